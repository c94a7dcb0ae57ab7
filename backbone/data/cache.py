"""The query cache in front of the store's reads.

- Keys come from the query and its parameters, prefixed by the contract's namespace, and
  carry the generation of every (dimension, symbol) the query reads. An ingest bumps the
  generations of what it wrote, so older entries are never read again and expire on their
  own: no KEYS, no SCAN. A read is one round trip: a Lua script the first time a client
  reads a query, then one MGET of the generations and the entry key the last read named
  (and the script as well when the generations moved since).
- Values are JSON (never pickle); TTL from the policy with jitter, so entries written
  together do not all expire together.
- Single flight: on a miss one caller runs the query under a lock (Redis `SET NX PX` on
  institutional, a process lock on bootstrap); the others wait for its value.
- Key budget: an index of entries (by when they were written) trims the oldest beyond
  `max_keys`.
- The cache is never a point of failure: when Redis does not answer, reads go to the store
  and a warning says so; Redis is tried again after a short pause.
- Counters: each client keeps its own (`QueryCache.stats`); on Redis they also add up in the
  namespace's hash `{namespace}:stats`, shared by every client (`shared_stats`,
  `redis_shared_stats`), which `validate` judges. The write script counts sets and
  evictions; reads are counted by the client and added at most once a second (and on
  close), so a hit stays one read-only round trip (see `RedisBackend.get`).
"""
from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from ..contract import CachePolicy, Contract
from .cache_local import LocalBackend  # noqa: F401 (re-exported: the data API and the probes import it from here)

BOOTSTRAP_CACHE = CachePolicy(ttl_seconds=1800, max_keys=256)  # the in-process cache without a redis section


def cache_policy(contract: Contract) -> CachePolicy:
    """The query cache's policy for a contract, the one the data API runs with (and the
    probes, the smoke round trip and `validate` judge): the redis section's; without one,
    the bootstrap tier's in-process cache (`BOOTSTRAP_CACHE`), or the defaults on an
    institutional tier."""
    if contract.redis:
        return contract.redis.cache_policy
    return BOOTSTRAP_CACHE if contract.tier == "bootstrap" else CachePolicy()

# The namespace's shared counters: a hash `{namespace}:stats` (fields in STATS_FIELDS), so
# `validate` judges the cache as all its readers see it. No TTL: totals since the namespace
# was first used.
STATS_FIELDS = ("hits", "misses", "sets", "evictions")
FLUSH_READS_S = 1.0  # how often a client adds its read counts to the shared hash

# One round trip for a read: the generations and the entry they name. KEYS = generation
# keys; ARGV[1] = the entry key's prefix. Returns {value or false, key}. RedisBackend.get
# runs it for a query's first read and after its generations moved; otherwise a plain MGET.
_GET = """
local gens = redis.call('MGET', unpack(KEYS))
for i, g in ipairs(gens) do if not g then gens[i] = '0' end end
local key = ARGV[1] .. ':' .. table.concat(gens, '.')
return {redis.call('GET', key) or false, key}
"""
# Store an entry, index it by when it was written, drop index entries old enough to have
# expired, trim the oldest beyond the budget, count the set and the evictions. KEYS[1] =
# entry, KEYS[2] = index, KEYS[3] = the stats hash; ARGV = value, ttl_ms (jittered), now_ms,
# max_keys, the policy's ttl_ms. Returns evictions.
_SET = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('HINCRBY', KEYS[3], 'sets', 1)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  -- the oldest, never the entry just written (entries written in the same millisecond tie)
  local evicted = 0
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, over)) do
    if evicted < over and old ~= KEYS[1] then
      redis.call('ZREM', KEYS[2], old)
      redis.call('DEL', old)
      evicted = evicted + 1
    end
  end
  redis.call('HINCRBY', KEYS[3], 'evictions', evicted)
  return evicted
end
return 0
"""
RETRY_REDIS_AFTER_S = 5.0


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    sets: int = 0
    invalidations: int = 0
    evictions: int = 0
    stampedes_avoided: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def hit(self) -> None:
        with self._lock:
            self.hits += 1

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("hits", "misses", "sets", "invalidations", "evictions",
                                              "stampedes_avoided", "errors")}


@dataclass
class Lookup:
    value: Any
    hit: bool
    source: str  # "cache", "store", "store (cache unavailable)"


def cache_key(kind: str, params: dict[str, Any]) -> str:
    """A stable digest of the query and its parameters."""
    text = json.dumps({"q": kind, **params}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_PLAIN = frozenset((str, int, float, bool, type(None)))
_STRINGS = frozenset((str,))


def _memo_key(kind: str, params: dict[str, Any], scopes: list[tuple[str, str]]) -> tuple | None:
    """An exact, hashable stand-in for a query when its parameters are plain values or
    sequences of strings (each value's type included: 1, 1.0 and True name different
    entries), else None."""
    parts: list = [kind, tuple(scopes)]
    for name, value in params.items():
        kind_of = type(value)
        if kind_of in _PLAIN:
            parts.append((name, kind_of, value))
        elif (kind_of is list or kind_of is tuple) and set(map(type, value)) <= _STRINGS:
            parts.append((name, list, tuple(value)))  # a list and a tuple dump to the same JSON
        else:
            return None
    return tuple(parts)


class QueryCache:
    """`get_or_load(kind, params, scopes, load)`: the cached value of `load()` for this query.
    `scopes` are the (dimension, symbol) pairs the query reads; `invalidate` bumps them."""

    def __init__(self, policy: CachePolicy, backend: "RedisBackend | LocalBackend",
                 warn: Callable[[str], None] | None = None, lock_timeout_s: float = 10.0):
        self.policy = policy
        self.backend = backend
        self.stats = CacheStats()
        self.warn = warn or (lambda message: None)
        self.lock_timeout_s = lock_timeout_s
        self._down_until = 0.0
        # the last decoded value per entry, reused while the entry's bytes are unchanged: a hit
        # then costs the round trip, not the decoding
        self._decoded: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._named: dict[tuple, tuple[list[str], str]] = {}  # see _names
        self._stats_key = stats_key(policy.namespace)
        self._reads_flushed = (0, 0)  # (hits, misses) already added to the shared hash
        self._flush_after = time.monotonic() + FLUSH_READS_S
        self._flush_lock = threading.Lock()

    def _ttl_ms(self) -> int:
        return max(1, int(self.policy.ttl_seconds * 1000 * random.uniform(0.9, 1.0)))

    def get_or_load(self, kind: str, params: dict[str, Any], scopes: list[tuple[str, str]],
                    load: Callable[[], Any], convert: Callable[[Any], Any] = lambda v: v) -> Lookup:
        """`load()` returns JSON-ready data; `convert` turns it into what the caller wants
        (on a hit and on a miss alike)."""
        if time.monotonic() < self._down_until:
            return Lookup(convert(load()), False, "store (cache unavailable)")
        gens, prefix = self._names(kind, params, scopes)
        try:
            raw, key = self.backend.get(gens, prefix)
            if raw is not None:
                self.stats.hit()
                if time.monotonic() >= self._flush_after:
                    self._reads_counted()
                seen = self._decoded.get(key)  # the hit's usual case inline: the bytes decoded before
                return Lookup(seen[1] if seen is not None and seen[0] == raw else self._decode(key, raw, convert),
                              True, "cache")
            self.stats.add(misses=1)
            self._reads_counted()
            found = self._fill(key, load)
            return Lookup(convert(found.value), found.hit, found.source)
        except self.backend.errors as exc:
            self._unavailable(exc)
            return Lookup(convert(load()), False, "store (cache unavailable)")

    def _names(self, kind: str, params: dict[str, Any], scopes: list[tuple[str, str]]) -> tuple[list[str], str]:
        """The generation keys and the entry key's prefix of a query, remembered for queries
        whose parameters are plain values (a hit then formats and hashes nothing)."""
        memo = _memo_key(kind, params, scopes)
        try:
            names = self._named.get(memo) if memo is not None else None
        except TypeError:  # a scope that is no (dimension, symbol) tuple of strings: not remembered
            memo = names = None
        if names is None:  # formatted and hashed once per query
            ns = self.policy.namespace
            gens = [f"{ns}:gen:{d}:{s}" for d, s in sorted(set(scopes))] or [f"{ns}:gen:-"]
            names = (gens, f"{ns}:q:{kind}:{cache_key(kind, params)}")
            if memo is not None:
                if len(self._named) >= 1024:
                    self._named.clear()
                self._named[memo] = names
        return names

    def _decode(self, key: str, raw, convert: Callable[[Any], Any]) -> Any:
        seen = self._decoded.get(key)
        if seen is not None and seen[0] == raw:
            return seen[1]
        value = convert(json.loads(raw))
        self._decoded[key] = (raw, value)
        if len(self._decoded) > 256:
            self._decoded.popitem(last=False)
        return value

    def _fill(self, key: str, load: Callable[[], Any]) -> Lookup:
        token = self.backend.lock(key, self.lock_timeout_s)
        if token is None:  # somebody else is loading this key: wait for their value
            deadline = time.monotonic() + self.lock_timeout_s
            while time.monotonic() < deadline:
                time.sleep(0.005)
                raw = self.backend.get_key(key)
                if raw is not None:
                    return self._filled_by_another(raw)
            token = self.backend.lock(key, self.lock_timeout_s)  # the loader died: take over
        elif (raw := self.backend.get_key(key)) is not None:
            # the lock was free because a loader had just finished: its entry is there
            self.backend.unlock(key, token)
            return self._filled_by_another(raw)
        try:
            value = load()
            text = json.dumps(value, separators=(",", ":"))
            evicted = self.backend.set(key, f"{self.policy.namespace}:index", text, self._ttl_ms(),
                                       self.policy.max_keys, self.policy.ttl_seconds * 1000, self._stats_key)
            self.stats.add(sets=1, evictions=evicted)
            return Lookup(value, False, "store")
        finally:
            if token is not None:
                self.backend.unlock(key, token)

    def _reads_counted(self) -> None:
        if time.monotonic() >= self._flush_after:
            try:
                self.flush_reads()
            except self.backend.errors:
                pass  # counted next time: the counters never fail a read

    def flush_reads(self) -> None:
        """Add this client's hits and misses since the last flush to the shared hash."""
        with self._flush_lock:
            self._flush_after = time.monotonic() + FLUSH_READS_S
            hits, misses = self.stats.hits, self.stats.misses
            done_hits, done_misses = self._reads_flushed
            if hits > done_hits or misses > done_misses:
                self.backend.add_reads(self._stats_key, hits - done_hits, misses - done_misses)
                self._reads_flushed = (hits, misses)

    def shared_stats(self) -> dict[str, int]:
        """Hits, misses, sets and evictions of this namespace as every client sees them: the
        Redis hash on institutional, this process's own counters in process (raises the
        backend's errors: callers that must not fail catch `backend.errors`)."""
        self.flush_reads()
        shared = self.backend.shared_stats(self._stats_key)
        if shared is None:
            own = self.stats.to_dict()
            return {name: own[name] for name in STATS_FIELDS}
        return shared

    def _filled_by_another(self, raw) -> Lookup:
        self.stats.add(stampedes_avoided=1)
        return Lookup(json.loads(raw), False, "cache (filled by a concurrent reader)")

    def invalidate(self, scopes: list[tuple[str, str]]) -> None:
        """After a committed ingest: every cached query over these (dimension, symbol) pairs
        is stale. Never raises: a cache that cannot be told only means stale reads until TTL."""
        if not scopes:
            return
        ns = self.policy.namespace
        try:
            self.backend.bump([f"{ns}:gen:{d}:{s}" for d, s in sorted(set(scopes))])
            self.stats.add(invalidations=len(set(scopes)))
        except self.backend.errors as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: BaseException) -> None:
        self.stats.add(errors=1)
        self._down_until = time.monotonic() + RETRY_REDIS_AFTER_S
        self.warn(f"query cache unavailable ({type(exc).__name__}); reading from the store, "
                  f"retrying the cache in {RETRY_REDIS_AFTER_S:g} s")


def stats_key(namespace: str) -> str:
    return f"{namespace}:stats"


def redis_shared_stats(client, namespace: str) -> dict[str, int]:
    """The namespace's shared counters, read with any redis-py client (zeros for a namespace
    nothing has counted into yet)."""
    return _counts(client.hgetall(stats_key(namespace)))


def _counts(raw: dict) -> dict[str, int]:
    values = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    return {name: int(values.get(name, 0)) for name in STATS_FIELDS}


class RedisBackend:
    def __init__(self, client) -> None:
        import redis
        self.client = client
        self.errors = (redis.RedisError, OSError)
        self._get = client.register_script(_GET)
        self._set = client.register_script(_SET)
        # per entry prefix: the generation keys, the entry key the last read named, the
        # generations in it and the MGET reading both, its arguments encoded once (see get)
        self._named: dict[str, tuple[list[str], str, list[bytes], tuple]] = {}

    def get(self, gens: list[str], prefix: str) -> tuple[bytes | None, str]:
        """The entry the generations name now, and its key. A query read before is one MGET
        of its generation keys and the entry key the last read named: Redis reads them at
        one instant, so when the generations are still the ones in that key, its value (or
        its absence) is exactly what the `_GET` script would return, without the script's
        cost (Lua copies the value; ~10x a GET on the server for a 70 kB entry). When they
        moved (an invalidation since), or on a first read, the script."""
        named = self._named.get(prefix)
        if named is not None and (named[0] is gens or named[0] == gens):
            found = self.client.execute_command(*named[3])
            if [g or b"0" for g in found[:-1]] == named[2]:
                return found[-1], named[1]
        value, key = self._get(keys=gens, args=[prefix])
        key = key.decode() if isinstance(key, bytes) else key
        if len(self._named) >= 1024:
            self._named.clear()
        self._named[prefix] = (gens, key, [g.encode() for g in key[len(prefix) + 1:].split(".")],
                               ("MGET", *(g.encode() for g in gens), key.encode()))
        return (value or None), key

    def get_key(self, key: str) -> bytes | None:
        return self.client.get(key)

    def set(self, key: str, index: str, value: str, ttl_ms: int, max_keys: int, ttl_max_ms: int, stats: str) -> int:
        return int(self._set(keys=[key, index, stats],
                             args=[value, ttl_ms, int(time.time() * 1000), max_keys, ttl_max_ms]))

    def add_reads(self, stats: str, hits: int, misses: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(stats, "hits", hits)
        pipe.hincrby(stats, "misses", misses)
        pipe.execute()

    def shared_stats(self, stats: str) -> dict[str, int]:
        return _counts(self.client.hgetall(stats))

    def lock(self, key: str, timeout_s: float) -> str | None:
        token = f"{random.getrandbits(64):x}"
        return token if self.client.set(f"{key}:lock", token, nx=True, px=int(timeout_s * 1000)) else None

    def unlock(self, key: str, token: str) -> None:
        # only our own lock: it may have expired and been taken by another loader
        self.client.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
                         "return 0", 1, f"{key}:lock", token)

    def bump(self, gens: list[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for gen in gens:
            pipe.incr(gen)
        pipe.execute()
