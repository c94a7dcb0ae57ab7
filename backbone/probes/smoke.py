"""The smoke round trip: write a row to the store, read it through the cache, publish it
as an event and consume it back. Institutional tier: Timescale -> Redis -> Kafka;
bootstrap tier: the embedded store -> the in-process query cache -> the durable event log
(an event appended and read back inside a transaction that is rolled back, so consumers of
the log never see it)."""
from __future__ import annotations

import json
import sqlite3
import time
import uuid

from ..checks import DOWN, OK, CheckResult
from ..contract import Contract
from .bootstrap import connect


def smoke_check(contract: Contract, timeout_s: float) -> CheckResult:
    token = uuid.uuid4().hex
    row = {"id": token, "symbol": "SMOKE", "close": 101.25}
    legs: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    leg = "store"
    try:
        t = time.perf_counter()
        stored = _store_round_trip(contract, row, timeout_s)
        legs["store_ms"] = (time.perf_counter() - t) * 1000
        leg = "cache"
        t = time.perf_counter()
        cached = _cache_round_trip(contract, stored, timeout_s)
        legs["cache_ms"] = (time.perf_counter() - t) * 1000
        leg = "stream"
        t = time.perf_counter()
        _stream_round_trip(contract, cached, deadline)
        legs["stream_ms"] = (time.perf_counter() - t) * 1000
    except Exception as exc:  # every leg's driver raises its own family; the leg name is what matters
        return CheckResult("smoke", DOWN, f"smoke_{leg}_failed",
                           f"The store -> cache -> stream round trip failed at the {leg} leg.",
                           latency_ms=sum(legs.values()), error=str(exc).strip() or type(exc).__name__,
                           details={k: round(v, 2) for k, v in legs.items()})
    names = ("embedded store", "in-process cache", "event log") if contract.tier == "bootstrap" \
        else ("Timescale", "Redis", "Kafka")
    return CheckResult("smoke", OK, "ok", f"A row went {' -> '.join(names)} and came back intact.",
                       latency_ms=sum(legs.values()), details={k: round(v, 2) for k, v in legs.items()})


def _store_round_trip(contract: Contract, row: dict, timeout_s: float) -> str:
    payload = json.dumps(row, sort_keys=True)
    if contract.tier == "bootstrap":
        with connect(contract.bootstrap.store, timeout_s) as conn:
            conn.execute("CREATE TEMP TABLE backbone_smoke (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
            conn.execute("INSERT INTO backbone_smoke VALUES (?, ?)", (row["id"], payload))
            found = conn.execute("SELECT payload FROM backbone_smoke WHERE id = ?", (row["id"],)).fetchone()
    else:
        from ..clients import timescale as timescale_client
        # a temporary table: the round trip leaves nothing behind in the database
        with timescale_client.connect(contract.timescale, timeout_s) as conn:
            conn.execute("CREATE TEMP TABLE backbone_smoke (id text PRIMARY KEY, payload text NOT NULL) "
                         "ON COMMIT DROP")
            conn.execute("INSERT INTO backbone_smoke VALUES (%s, %s)", (row["id"], payload))
            found = conn.execute("SELECT payload FROM backbone_smoke WHERE id = %s", (row["id"],)).fetchone()
            conn.rollback()
    if found is None or found[0] != payload:
        raise sqlite3.DatabaseError("the row read back differs from the row written")
    return found[0]


def _cache_round_trip(contract: Contract, payload: str, timeout_s: float) -> str:
    key = "smoke:" + json.loads(payload)["id"]
    if contract.tier == "bootstrap":
        from ..data.cache import LocalBackend, QueryCache, cache_policy
        cache = QueryCache(cache_policy(contract), LocalBackend())
        cache.get_or_load("smoke", {"key": key}, [], lambda: payload)
        found = cache.get_or_load("smoke", {"key": key}, [], lambda: None)
        value = found.value if found.hit else None
    else:
        from ..clients.redis import redis_client
        policy = contract.redis.cache_policy
        client = redis_client(contract.redis, timeout_s)
        try:
            full = f"{policy.namespace}:{key}"
            client.set(full, payload, ex=min(60, policy.ttl_seconds))
            raw = client.get(full)
            client.delete(full)
        finally:
            client.close()
        value = raw.decode() if raw is not None else None
    if value != payload:
        raise RuntimeError("the cache returned something other than what was stored")
    return value


def _stream_round_trip(contract: Contract, payload: str, deadline: float) -> None:
    if contract.tier == "bootstrap":
        event_id = str(uuid.uuid4())
        conn = connect(contract.bootstrap.store, max(0.5, deadline - time.monotonic()))
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at) "
                         "VALUES (?, 'smoke', 'smoke:SMOKE', 'smoke', ?, datetime('now'))", (event_id, payload))
            found = conn.execute("SELECT payload FROM outbox WHERE id = ?", (event_id,)).fetchone()
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        if found is None or found[0] != payload:
            raise RuntimeError("the event log returned a different event")
        return
    from ..clients import kafka as kafka_client
    from .kafka import run_canary
    ep = contract.kafka
    admin = kafka_client.admin(ep, max(0.5, deadline - time.monotonic()))
    brokers = len(admin.list_topics(timeout=max(0.5, deadline - time.monotonic())).brokers)
    result = run_canary(ep, admin, brokers, deadline, value=payload.encode())
    if not result["ok"]:
        raise RuntimeError(result["error"])
