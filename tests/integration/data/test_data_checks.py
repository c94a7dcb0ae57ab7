"""`backbone validate`'s data checks against real services (the session's TimescaleDB, Redis
and 3-broker Kafka) and the embedded bootstrap store: ingest freshness per dimension, the
outbox backlog, the bridge's consumer lag, the query cache's ratios from shared counters.

Tests that ingest do it into a scratch database on the same server, so the shared
environment's journal and outbox stay as they were; each test has its own consumer group and
cache namespace."""
import copy
import datetime as dt
import json
import os
import socket
import sqlite3
import threading
import time
import uuid

import psycopg
import pytest
import redis
from junitparser import JUnitXml

from backbone.clients.redis import redis_client
from backbone.contract import Contract, merge_outputs
from backbone.data import open_backbone
from backbone.data.cache import QueryCache, RedisBackend, redis_shared_stats
from backbone.data.checks import cache_check
from backbone.events.checks import consumer_lag_check

from ..conftest import run_backbone
from ..pg import create_database, drop_database, owner_url

DATA_CHECKS = ("freshness.bars", "freshness.trades", "freshness.macro", "outbox", "consumer_lag", "cache_ratios")
BAR_HEADER = "symbol,ts,open,high,low,close,volume\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def outputs_with(local_env, tmp_path, data=None, cache=None, database=None, kafka=None, redis_port=None):
    """A copy of the environment's outputs with a changed `data` section, cache policy,
    database, Kafka servers or Redis port (the data policy has no environment variables)."""
    doc = copy.deepcopy(json.loads(local_env["outputs"].read_text()))
    public = doc["backbone"]
    public["data"] = {**public.get("data", {}), **(data or {})}
    if cache:
        public["redis"]["cache_policy"] = {**public["redis"].get("cache_policy", {}), **cache}
    if database:
        public["timescale"]["database"] = database
    if kafka:
        public["kafka"]["bootstrap_servers"] = kafka
    if redis_port:
        public["redis"]["port"] = redis_port
    path = tmp_path / f"{unique('outputs')}.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return path


def contract_of(outputs) -> Contract:
    return Contract.model_validate(merge_outputs(json.loads(outputs.read_text())))


def validate(outputs, *args, fmt="json", timeout=90):
    return run_backbone("validate", "--outputs", str(outputs), "--format", fmt, *args, timeout=timeout)


def data_checks_of(proc) -> dict:
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert set(DATA_CHECKS) <= set(checks), proc.stdout + proc.stderr
    return checks


def backbone(*args, outputs=None, cwd=None, timeout=120):
    src = ("--outputs", str(outputs)) if outputs else ()
    return run_backbone(*args, *src, cwd=cwd, timeout=timeout)


def pg_dsn(local_env, database=None):
    """The schema owner's URL: the tests plant constraints and journal rows by hand."""
    return owner_url(local_env, database)


@pytest.fixture
def scratch(local_env, tmp_path):
    """A migrated database of its own on the session's server: (name, outputs pointing at it)."""
    name = "checks_" + uuid.uuid4().hex[:8]
    create_database(local_env, name)
    try:
        outputs = outputs_with(local_env, tmp_path, database=name)
        applied = backbone("migrate", "apply", outputs=outputs)
        assert applied.returncode == 0, applied.stderr
        yield name, outputs
    finally:
        drop_database(local_env, name)


def ingest_file(outputs, path, dimension="bars", cwd=None):
    return backbone("ingest", "--dimension", dimension, "--file", str(path), outputs=outputs, cwd=cwd)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- freshness -----------------------------------------------------------------------------

def test_a_fresh_ingest_is_ok_and_stale_past_a_one_second_slo(local_env, scratch, tmp_path):
    name, _ = scratch
    outputs = outputs_with(local_env, tmp_path, database=name,
                           data={"freshness_slo_s": {"bars": 3600, "trades": 900, "macro": None}})
    done = backbone("ingest", "--dimension", "bars", "--generate", "20", "--symbols", "2", outputs=outputs)
    assert done.returncode == 0, done.stderr
    checks = data_checks_of(validate(outputs))
    bars = checks["freshness.bars"]
    assert (bars["status"], bars["code"]) == ("ok", "ok"), bars
    assert bars["details"]["slo_s"] == 3600 and 0 <= bars["details"]["age_s"] < 60
    assert bars["details"]["last_run"]["status"] == "ok"
    assert checks["freshness.macro"]["code"] == "not_checked" and checks["freshness.macro"]["status"] == "ok"

    strict = outputs_with(local_env, tmp_path, database=name,
                          data={"freshness_slo_s": {"bars": 1, "trades": 900, "macro": None}})
    time.sleep(1.5)
    proc = validate(strict)
    bars = data_checks_of(proc)["freshness.bars"]
    assert (bars["status"], bars["code"]) == ("degraded", "stale"), bars
    assert "bars: stale: " in bars["message"] and " s > SLO 1 s (last successful ingest at " in bars["message"]
    assert bars["details"]["age_s"] > 1
    assert proc.returncode == 0, proc.stdout  # degraded is exit 0 without --strict
    assert "degraded: " in proc.stderr and "freshness.bars" in proc.stderr
    assert validate(strict, "--strict").returncode == 1


def test_a_failed_last_run_is_down_and_a_rejected_one_degraded(local_env, scratch, tmp_path):
    name, outputs = scratch
    good = tmp_path / "good.csv"
    good.write_text(BAR_HEADER + "OKSYM,2024-01-02T00:00:00Z,10,11,9,10.5,100\n")
    assert ingest_file(outputs, good).returncode == 0
    assert data_checks_of(validate(outputs))["freshness.bars"]["status"] == "ok"

    # a real failure: the database refuses the rows (a constraint the validation knows nothing of)
    with psycopg.connect(pg_dsn(local_env, name), autocommit=True) as conn:
        conn.execute("ALTER TABLE daily_bars ADD CONSTRAINT planted_failure CHECK (symbol <> 'FAILME')")
    failing = tmp_path / "failing.csv"
    failing.write_text(BAR_HEADER + "FAILME,2024-01-03T00:00:00Z,10,11,9,10.5,100\n")
    failed = ingest_file(outputs, failing)
    assert failed.returncode == 1 and "ingest failed" in failed.stderr, failed.stderr
    with psycopg.connect(pg_dsn(local_env, name), autocommit=True) as conn:
        conn.execute("ALTER TABLE daily_bars DROP CONSTRAINT planted_failure")
        status, error = conn.execute("SELECT status, error FROM ingest_runs "
                                     "ORDER BY finished_at DESC LIMIT 1").fetchone()
    assert (status, error) == ("failed", "CheckViolation")
    proc = validate(outputs)
    assert proc.returncode == 1, proc.stdout
    bars = data_checks_of(proc)["freshness.bars"]
    assert (bars["status"], bars["code"]) == ("down", "last_run_failed"), bars
    assert bars["message"].startswith("bars: the last ingest failed at ") and "(CheckViolation)" in bars["message"]
    assert "last successful ingest " in bars["message"] and bars["error"] == "CheckViolation"
    assert bars["details"]["last_run"]["status"] == "failed"

    bad = tmp_path / "bad.csv"
    bad.write_text(BAR_HEADER + "BADSYM,2024-01-04T00:00:00Z,10,8,9,10.5,100\n")  # high below low
    assert ingest_file(outputs, bad).returncode == 2
    bars = data_checks_of(validate(outputs))["freshness.bars"]
    assert (bars["status"], bars["code"]) == ("degraded", "last_run_rejected"), bars
    assert "was rejected and wrote nothing (1 bad row(s); first: row 2: high 8 is below low 9)" in bars["message"]

    for name, content, reason in (("wrong.csv", "symbol,when\nX,1\n", "missing required column(s) ts, open"),
                                  ("plain.csv.gz", BAR_HEADER, "named .gz but is not gzip-compressed")):
        refused = tmp_path / name  # the input refused as a whole: rejected (degraded), not failed (down)
        refused.write_text(content)
        done = ingest_file(outputs, refused)
        assert done.returncode == 2 and f"backbone: error: {refused}: {reason}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        proc = validate(outputs)
        bars = data_checks_of(proc)["freshness.bars"]
        assert (bars["status"], bars["code"]) == ("degraded", "last_run_rejected"), bars
        assert f"the last ingest of {refused}, at " in bars["message"] and reason in bars["message"]
        assert proc.returncode == 0, proc.stdout

    assert ingest_file(outputs, good).returncode == 0  # a success afterwards: healthy again
    assert data_checks_of(validate(outputs))["freshness.bars"]["status"] == "ok"


def test_a_secret_in_the_journal_never_reaches_a_report(local_env, scratch, tmp_path):
    name, outputs = scratch
    password = local_env["contract"]["backbone_secrets"]["timescale"]["password"]
    with psycopg.connect(pg_dsn(local_env, name), autocommit=True) as conn:
        conn.execute("INSERT INTO ingest_runs (run_id, dimension, status, rows, symbols, metadata, started_at, "
                     "finished_at, error) VALUES ('planted', 'trades', 'failed', 0, '[]', '{}', now(), now(), %s)",
                     (f"could not connect to postgresql://backbone:{password}@db/x",))
    for fmt in ("markdown", "json", "junit"):
        proc = validate(outputs, fmt=fmt)
        assert proc.returncode == 1
        assert password not in proc.stdout + proc.stderr, fmt
        assert "freshness.trades" in proc.stdout and "***" in proc.stdout, fmt


# --- outbox ----------------------------------------------------------------------------------

def test_an_outbox_backlog_is_degraded_until_the_relay_runs_in_every_report_format(local_env, scratch, tmp_path):
    name, _ = scratch
    outputs = outputs_with(local_env, tmp_path, database=name, data={"outbox_max_age_s": 1})
    done = backbone("ingest", "--dimension", "bars", "--generate", "30", "--symbols", "3", outputs=outputs)
    assert done.returncode == 0, done.stderr
    time.sleep(1.5)
    proc = validate(outputs)
    outbox = data_checks_of(proc)["outbox"]
    assert (outbox["status"], outbox["code"]) == ("degraded", "outbox_backlog"), outbox
    assert outbox["details"]["unpublished"] == 3 and outbox["details"]["oldest_age_s"] > 1
    assert outbox["message"].startswith("3 event(s) waiting, the oldest ")
    assert outbox["message"].endswith(
        "is the relay (`backbone serve` or `backbone events relay`) running and Kafka reachable?")

    markdown = validate(outputs, fmt="markdown").stdout
    assert "| outbox | ⚠️ degraded |" in markdown and "`outbox_backlog`" in markdown
    for check in DATA_CHECKS:
        assert f"| {check} | " in markdown
    junit = tmp_path / "validate.xml"
    assert validate(outputs, "--output", str(junit), fmt="junit").returncode == 0
    cases = {case.name: case for suite in JUnitXml.fromfile(str(junit)) for case in suite}
    assert set(DATA_CHECKS) <= set(cases)
    assert cases["outbox"].is_passed and "degraded (outbox_backlog)" in cases["outbox"].system_out
    strict = tmp_path / "strict.xml"
    validate(outputs, "--strict", "--output", str(strict), fmt="junit")
    cases = {case.name: case for suite in JUnitXml.fromfile(str(strict)) for case in suite}
    assert not cases["outbox"].is_passed  # with --strict degraded is a failure

    relayed = backbone("events", "relay", outputs=outputs)
    assert relayed.returncode == 0 and json.loads(relayed.stdout) == {"published": 3, "backlog": 0}, relayed.stderr
    outbox = data_checks_of(validate(outputs))["outbox"]
    assert (outbox["status"], outbox["message"]) == ("ok", "The outbox is drained: every event is published.")
    assert outbox["details"] == {"unpublished": 0, "oldest_age_s": None, "max_age_s": 1}


# --- consumer lag ------------------------------------------------------------------------------

def test_consumer_lag_until_the_group_consumes(local_env, scratch, tmp_path):
    name, _ = scratch
    group = unique("backbone-bridge-test-lag")  # the bridge principal reads in its own groups only
    outputs = outputs_with(local_env, tmp_path, database=name, data={"consumer_group": group, "consumer_lag_max": 0})
    done = backbone("ingest", "--dimension", "trades", "--generate", "40", "--symbols", "4", outputs=outputs)
    assert done.returncode == 0, done.stderr
    assert backbone("events", "relay", outputs=outputs).returncode == 0  # 4 more events on the topic

    lag = data_checks_of(validate(outputs))["consumer_lag"]
    assert (lag["status"], lag["code"]) == ("degraded", "lagging"), lag
    assert lag["details"]["committed"] is False and lag["details"]["lag"] >= 4
    assert lag["details"]["lag"] == sum(lag["details"]["partitions"].values())
    assert set(lag["details"]["partitions"]) == {f"ingest.events[{p}]" for p in range(6)}
    assert f"Group '{group}' is {lag['details']['lag']} event(s) behind on 'ingest.events' > 0 (" in lag["message"]
    assert "never committed" in lag["message"] and "is the bridge (`backbone serve`) consuming?" in lag["message"]

    tail = backbone("events", "tail", "--group", group, "--idle-timeout", "2", outputs=outputs)
    assert tail.returncode == 0, tail.stderr
    lag = data_checks_of(validate(outputs))["consumer_lag"]
    assert (lag["status"], lag["code"]) == ("ok", "ok"), lag
    assert lag["details"]["lag"] == 0 and lag["details"]["committed"] is True
    assert lag["message"] == f"Group '{group}' is 0 event(s) behind on 'ingest.events' (bound 0)."


def test_unreachable_kafka_is_down_and_unreachable_redis_degraded_within_the_timeout(local_env, tmp_path):
    outputs = outputs_with(local_env, tmp_path, kafka=f"127.0.0.1:{closed_port()}", redis_port=closed_port())
    contract = contract_of(outputs)
    started = time.monotonic()
    lag = consumer_lag_check(contract, 2.0)
    assert time.monotonic() - started < 2 + 2
    assert (lag.status, lag.code) == ("down", "unreachable") and lag.error, lag
    cache = cache_check(contract, 2.0)
    assert (cache.status, cache.code) == ("degraded", "unreachable") and cache.error, cache
    assert "never a point of failure" in cache.message


# --- cache -------------------------------------------------------------------------------------

def test_cache_ratios_come_from_the_shared_redis_counters(local_env, tmp_path):
    namespace = unique("emp:cache:test:checks")
    outputs = outputs_with(local_env, tmp_path, cache={"namespace": namespace}, data={"cache_min_lookups": 20})
    client = redis_client(contract_of(outputs).redis, 5)
    assert redis_shared_stats(client, namespace) == {"hits": 0, "misses": 0, "sets": 0, "evictions": 0}
    few = data_checks_of(validate(outputs))["cache_ratios"]
    assert (few["status"], few["code"]) == ("ok", "too_few_lookups")
    assert few["message"] == f"Cache '{namespace}': too few lookups to judge (0 < 20)."

    # two processes, one namespace: the counters are shared
    for _ in range(2):
        q = backbone("query", "latest", "--symbols", "AAA,BBB", "--repeat", "15", outputs=outputs)
        assert q.returncode == 0, q.stderr
    assert redis_shared_stats(client, namespace) == {"hits": 29, "misses": 1, "sets": 1, "evictions": 0}
    ratios = data_checks_of(validate(outputs))["cache_ratios"]
    assert (ratios["status"], ratios["code"]) == ("ok", "ok"), ratios
    assert ratios["details"] == {"namespace": namespace, "hits": 29, "misses": 1, "sets": 1, "evictions": 0,
                                      "lookups": 30, "hit_ratio": 0.9667, "eviction_ratio": 0.0, "hit_ratio_min": 0.5,
                                      "eviction_ratio_max": 0.5, "min_lookups": 20, "max_keys": 1024}
    assert ratios["message"] == (f"Cache '{namespace}': hit ratio 96.7% over 30 lookups, 0% of 1 entries written "
                                 "evicted.")


def test_a_tiny_key_budget_is_degraded_by_evictions(local_env, tmp_path):
    namespace = unique("emp:cache:test:evict")
    outputs = outputs_with(local_env, tmp_path, cache={"namespace": namespace, "max_keys": 1},
                           data={"cache_min_lookups": 20})
    start, end = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)
    with open_backbone(contract_of(outputs)) as bb:
        for i in range(15):  # each query a miss then a hit; every new entry evicts the one before
            assert not bb.bars([f"EV{i}"], start, end).hit
            assert bb.bars([f"EV{i}"], start, end).hit
        assert bb.cache.shared_stats() == {"hits": 15, "misses": 15, "sets": 15, "evictions": 14}
    ratios = data_checks_of(validate(outputs))["cache_ratios"]
    assert (ratios["status"], ratios["code"]) == ("degraded", "evictions_high"), ratios
    assert ratios["details"]["eviction_ratio"] == round(14 / 15, 4) and ratios["details"]["hit_ratio"] == 0.5
    assert ratios["message"].endswith("but the eviction ratio is above 50%: raise max_keys (now 1).")


def test_a_single_flight_waiter_is_counted_once(local_env, tmp_path):
    namespace = unique("emp:cache:test:flight")
    contract = contract_of(outputs_with(local_env, tmp_path, cache={"namespace": namespace}))
    client = redis_client(contract.redis, 5)
    cache = QueryCache(contract.redis.cache_policy, RedisBackend(client))
    barrier = threading.Barrier(20)
    ready = [client.connection_pool.get_connection() for _ in range(20)]  # TLS set up before the race
    for conn in ready:
        client.connection_pool.release(conn)

    def read():
        barrier.wait()
        cache.get_or_load("flight", {"k": 1}, [("bars", "FL")], lambda: time.sleep(1.0) or [1])
    threads = [threading.Thread(target=read) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every reader missed once; one loaded and wrote; the waiters found its entry without a second count
    assert cache.shared_stats() == {"hits": 0, "misses": 20, "sets": 1, "evictions": 0}
    assert cache.stats.stampedes_avoided == 19
    cache.get_or_load("flight", {"k": 1}, [("bars", "FL")], lambda: [2])
    assert redis_shared_stats(client, namespace)["hits"] == 0  # reads are added at most once a second
    cache.flush_reads()
    assert redis_shared_stats(client, namespace)["hits"] == 1
    client.close()


# --- the bootstrap tier --------------------------------------------------------------------------

def test_bootstrap_validate_is_ok_after_ingest_query_and_tail(tmp_path):
    assert backbone("migrate", "apply", cwd=tmp_path).returncode == 0
    for dimension in ("bars", "trades", "macro"):
        done = backbone("ingest", "--dimension", dimension, "--generate", "50", "--symbols", "3", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    query = backbone("query", "bars", "--symbols", "SYM000,SYM001", "--repeat", "120", cwd=tmp_path)
    assert query.returncode == 0, query.stderr
    before = data_checks_of(backbone("validate", "--format", "json", cwd=tmp_path))
    assert before["consumer_lag"]["details"]["lag"] > 0 and before["consumer_lag"]["details"]["committed"] is False
    tail = backbone("events", "tail", "--group", "backbone-bridge", "--idle-timeout", "2", cwd=tmp_path)  # consumes
    assert tail.returncode == 0, tail.stderr

    proc = backbone("validate", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = data_checks_of(proc)
    assert {n: (checks[n]["status"], checks[n]["code"]) for n in DATA_CHECKS} == {
        "freshness.bars": ("ok", "ok"), "freshness.trades": ("ok", "ok"), "freshness.macro": ("ok", "ok"),
        "outbox": ("ok", "ok"), "consumer_lag": ("ok", "ok"), "cache_ratios": ("ok", "ok")}
    assert checks["outbox"]["details"]["events"] == before["consumer_lag"]["details"]["lag"]
    assert checks["consumer_lag"]["details"] == {"group": "backbone-bridge", "topic": "log", "lag": 0,
                                                       "max_lag": 10000, "committed": True, "partitions": {"log[0]": 0}}
    cache = checks["cache_ratios"]["details"]
    assert (cache["namespace"], cache["hits"], cache["misses"], cache["sets"]) == ("emp:cache", 119, 1, 1)
    assert "degraded" not in proc.stderr

    markdown = backbone("validate", cwd=tmp_path).stdout
    junit = tmp_path / "report.xml"
    assert backbone("validate", "--format", "junit", "--output", str(junit), cwd=tmp_path).returncode == 0
    cases = {case.name: case for suite in JUnitXml.fromfile(str(junit)) for case in suite}
    for name in DATA_CHECKS:
        assert f"| {name} | ✅ ok |" in markdown
        assert cases[name].is_passed and cases[name].system_out.startswith("ok (ok)")


def test_bootstrap_failed_ingest_is_down(tmp_path):
    assert backbone("migrate", "apply", cwd=tmp_path).returncode == 0
    store = tmp_path / ".backbone" / "bootstrap" / "backbone.db"
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TRIGGER planted_failure BEFORE INSERT ON macro_events "
                     "BEGIN SELECT RAISE(ABORT, 'planted failure'); END")
    failed = backbone("ingest", "--dimension", "macro", "--generate", "5", "--symbols", "1", cwd=tmp_path)
    assert failed.returncode == 1 and "planted failure" in failed.stderr, failed.stderr
    with sqlite3.connect(store) as conn:
        conn.execute("DROP TRIGGER planted_failure")
    proc = backbone("validate", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    macro = data_checks_of(proc)["freshness.macro"]
    assert (macro["status"], macro["code"]) == ("down", "last_run_failed"), macro
    assert "(IntegrityError); no successful ingest ever." in macro["message"]
