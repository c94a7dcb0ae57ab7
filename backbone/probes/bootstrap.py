"""Bootstrap-tier checks: the embedded store, the in-process cache and the event log."""
from __future__ import annotations

import json
import sqlite3
import time
import uuid

from ..checks import DOWN, OK, Check, CheckResult
from ..contract import CachePolicy, Contract
from ..data.embedded import EmbeddedStore, InProcessCache, InProcessEventLog


def bootstrap_checks(contract: Contract, timeout_s: float) -> dict[str, Check]:
    store = EmbeddedStore(contract.bootstrap.store)
    policy = contract.redis.cache_policy if contract.redis else CachePolicy(ttl_seconds=1800, max_keys=256)
    return {
        "store": lambda: probe_store(store, timeout_s),
        "cache": lambda: probe_cache(InProcessCache(policy)),
        "events": lambda: probe_events(InProcessEventLog()),
    }


def probe_store(store: EmbeddedStore, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    token = uuid.uuid4().hex
    try:
        with store.connect(timeout_s) as conn:
            version = conn.execute("SELECT sqlite_version()").fetchone()[0]
            conn.execute("CREATE TABLE IF NOT EXISTS backbone_probe (token TEXT PRIMARY KEY, at REAL NOT NULL)")
            conn.execute("INSERT INTO backbone_probe VALUES (?, ?)", (token, time.time()))
            found = conn.execute("SELECT token FROM backbone_probe WHERE token = ?", (token,)).fetchone()
            conn.execute("DELETE FROM backbone_probe WHERE token = ?", (token,))
    except (sqlite3.Error, OSError) as exc:
        return CheckResult("store", DOWN, "store_error", f"The embedded store at {store.path} is unusable.",
                           latency_ms=(time.perf_counter() - started) * 1000, error=str(exc))
    ms = (time.perf_counter() - started) * 1000
    if found is None:
        return CheckResult("store", DOWN, "store_lost_write", f"A row written to {store.path} could not be read back.",
                           latency_ms=ms)
    return CheckResult("store", OK, "ok", f"The embedded store (SQLite {version}) at {store.path} reads and writes.",
                       latency_ms=ms, details={"path": str(store.path), "sqlite_version": version})


def probe_cache(cache: InProcessCache) -> CheckResult:
    started = time.perf_counter()
    key = "probe:" + uuid.uuid4().hex
    cache.set(key, "1")
    ok = cache.get(key) == "1"
    ms = (time.perf_counter() - started) * 1000
    if not ok:
        return CheckResult("cache", DOWN, "cache_miss", "The in-process cache lost a value it was just given.",
                           latency_ms=ms)
    p = cache.policy
    return CheckResult("cache", OK, "ok",
                       f"The in-process cache holds values under {p.namespace!r} (TTL {p.ttl_seconds} s, {p.max_keys} keys).",
                       latency_ms=ms, details=p.model_dump())


def probe_events(log: InProcessEventLog) -> CheckResult:
    started = time.perf_counter()
    payload = json.dumps({"probe": uuid.uuid4().hex}).encode()
    offset = log.publish("backbone.probe", "probe", payload)
    events = log.read("backbone.probe", offset)
    ms = (time.perf_counter() - started) * 1000
    if not events or events[0].value != payload:
        return CheckResult("events", DOWN, "event_lost", "The in-process event log lost an event.", latency_ms=ms)
    return CheckResult("events", OK, "ok", "The in-process event log publishes and replays events.", latency_ms=ms)
