"""The query cache's read path on real Redis: a client that has read a query before checks the
generations and reads the entry with one MGET of the key its last read named (not the Lua
script). These tests show that path never returns an entry older than an invalidation the
reader could have seen: from another client, in any order of reads and invalidations, and
while invalidations run concurrently with reads."""
import threading
import time
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backbone.clients.redis import redis_client
from backbone.contract import CachePolicy
from backbone.data.cache import QueryCache, RedisBackend

from .test_data_checks import contract_of, outputs_with


def caches(local_env, tmp_path, n: int = 2):
    """n clients of one fresh namespace, each with its own Redis connection pool."""
    namespace = f"emp:cache:test:reads-{uuid.uuid4().hex[:8]}"
    contract = contract_of(outputs_with(local_env, tmp_path))
    policy = CachePolicy(namespace=namespace, ttl_seconds=600, max_keys=10_000)
    return [QueryCache(policy, RedisBackend(redis_client(contract.redis, 5))) for _ in range(n)], namespace


def seen(found) -> tuple:
    return found.value, found.hit


def test_an_invalidation_by_another_client_is_seen_by_the_next_read(local_env, tmp_path):
    (reader, writer), namespace = caches(local_env, tmp_path)
    store = {"v": 1}
    read = lambda: seen(reader.get_or_load("q", {"s": "A"}, [("bars", "A"), ("bars", "B")], lambda: store["v"]))  # noqa: E731
    assert [read(), read(), read()] == [(1, False), (1, True), (1, True)]  # the second and third: the MGET path
    store["v"] = 2
    writer.invalidate([("bars", "B")])
    # the old entry is still there (expires by TTL): only the generations make it unreachable
    prefix = reader._names("q", {"s": "A"}, [("bars", "A"), ("bars", "B")])[1]
    assert prefix.startswith(f"{namespace}:q:") and reader.backend.client.exists(prefix + ":0.0")
    assert [read(), read()] == [(2, False), (2, True)]


def test_generations_that_vanish_or_start_from_nothing(local_env, tmp_path):
    (cache,), namespace = caches(local_env, tmp_path, 1)
    client, store = cache.backend.client, {"v": 0}
    read = lambda: seen(cache.get_or_load("q", {}, [("bars", "Z")], lambda: store["v"]))  # noqa: E731
    assert [read(), read()] == [(0, False), (0, True)]  # generation key absent: entry ...:0
    store["v"] = 1
    client.incr(f"{namespace}:gen:bars:Z")
    assert [read(), read()] == [(1, False), (1, True)]
    # back to no key (not something an invalidation does): the entry named ...:0 again, as the
    # Lua script names it; the MGET path must not keep reading the ...:1 entry
    client.delete(f"{namespace}:gen:bars:Z")
    assert read() == (0, True)
    client.set(f"{namespace}:gen:bars:Z", "0")  # a "0" and no key name the same entry
    assert read() == (0, True)
    client.set(f"{namespace}:gen:bars:Z", "1")
    assert read() == (1, True)


ops = st.lists(st.tuples(st.sampled_from(["read", "write"]), st.integers(0, 2),
                         st.lists(st.sampled_from("ABC"), min_size=1, max_size=3)), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops)
def test_any_order_of_reads_and_invalidations_never_reads_stale(local_env, tmp_path, ops):
    """Three clients; a write changes the store's value of some symbols and invalidates them
    through one client; every read, by any client, of any query returns the store's values
    as they are now."""
    clients, _ = caches(local_env, tmp_path, 3)
    store = {s: 0 for s in "ABC"}
    queries = [("A",), ("A", "B"), ("B", "C"), ("A", "B", "C")]
    for op, who, symbols in ops:
        if op == "write":
            for s in symbols:
                store[s] += 1
            clients[who].invalidate([("bars", s) for s in symbols])
            continue
        for query in queries:
            found = clients[who].get_or_load("q", {"series": list(query)}, [("bars", s) for s in query],
                                             lambda: [store[s] for s in query])
            assert found.value == [store[s] for s in query], (op, who, query, found)


def test_reads_concurrent_with_invalidations_never_go_back(local_env, tmp_path):
    """A writer bumps the store's version and invalidates, over and over; readers on other
    clients record the version every invalidation had finished by when their read began; no
    read returns a version older than that."""
    clients, _ = caches(local_env, tmp_path, 4)
    writer, readers = clients[0], clients[1:]
    version, done = {"v": 0, "invalidated": 0}, threading.Event()
    failures = []

    def write():
        for _ in range(200):
            version["v"] += 1
            writer.invalidate([("bars", "W")])
            version["invalidated"] = version["v"]
            time.sleep(0.001)
        done.set()

    def read(cache):
        while not done.is_set():
            floor = version["invalidated"]
            got = cache.get_or_load("w", {}, [("bars", "W")], lambda: version["v"]).value
            if got < floor:
                failures.append((floor, got))

    threads = [threading.Thread(target=read, args=(c,)) for c in readers] + [threading.Thread(target=write)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert sum(c.stats.hits for c in readers) > 0
