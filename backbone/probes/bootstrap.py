"""Bootstrap-tier checks: the embedded store, the query cache as the data API runs it
(in-process backend), and the durable event log in the store."""
from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from ..checks import DOWN, OK, Check, CheckResult
from ..contract import CachePolicy, Contract


def connect(path: str | Path, timeout_s: float) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(path, timeout=timeout_s)


def bootstrap_checks(contract: Contract, timeout_s: float) -> dict[str, Check]:
    from ..data.cache import cache_policy
    path = Path(contract.bootstrap.store)
    return {
        "store": lambda: probe_store(path, timeout_s),
        "cache": lambda: probe_cache(cache_policy(contract)),
        "events": lambda: probe_events(path, timeout_s),
    }


def probe_store(path: Path, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    token = uuid.uuid4().hex
    try:
        with connect(path, timeout_s) as conn:
            version = conn.execute("SELECT sqlite_version()").fetchone()[0]
            conn.execute("CREATE TEMP TABLE backbone_probe (token TEXT PRIMARY KEY, at REAL NOT NULL)")
            conn.execute("INSERT INTO backbone_probe VALUES (?, ?)", (token, time.time()))
            found = conn.execute("SELECT token FROM backbone_probe WHERE token = ?", (token,)).fetchone()
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    except (sqlite3.Error, OSError) as exc:
        return CheckResult("store", DOWN, "store_error", f"The embedded store at {path} is unusable.",
                           latency_ms=(time.perf_counter() - started) * 1000, error=str(exc))
    ms = (time.perf_counter() - started) * 1000
    if found is None:
        return CheckResult("store", DOWN, "store_lost_write", f"A row written to {path} could not be read back.",
                           latency_ms=ms)
    return CheckResult("store", OK, "ok", f"The embedded store (SQLite {version}, {journal}) at {path} reads and writes.",
                       latency_ms=ms, details={"path": str(path), "sqlite_version": version, "journal_mode": journal})


def probe_cache(policy: CachePolicy) -> CheckResult:
    """A miss then a hit through the query cache with the in-process backend."""
    from ..data.cache import LocalBackend, QueryCache
    started = time.perf_counter()
    cache, token = QueryCache(policy, LocalBackend()), uuid.uuid4().hex
    first = cache.get_or_load("probe", {"token": token}, [], lambda: [token])
    second = cache.get_or_load("probe", {"token": token}, [], lambda: ["reloaded"])
    ms = (time.perf_counter() - started) * 1000
    if first.hit or not second.hit or second.value != [token]:
        return CheckResult("cache", DOWN, "cache_miss", "The in-process query cache lost a value it was just given.",
                           latency_ms=ms)
    return CheckResult("cache", OK, "ok",
                       f"The in-process query cache holds values under {policy.namespace!r} "
                       f"(TTL {policy.ttl_seconds} s, {policy.max_keys} keys).",
                       latency_ms=ms, details=policy.model_dump())


def probe_events(path: Path, timeout_s: float) -> CheckResult:
    """The event log is the store's outbox table: present, and where its head is."""
    started = time.perf_counter()
    try:
        with connect(path, timeout_s) as conn:
            events, head = conn.execute("SELECT count(*), coalesce(max(seq), 0) FROM outbox").fetchone()
            groups = conn.execute("SELECT count(*) FROM consumer_positions").fetchone()[0]
    except sqlite3.OperationalError as exc:
        code, text = (("event_log_missing", "The event log is not in the store yet: run `backbone migrate apply`.")
                      if "no such table" in str(exc) else ("event_log_error", "The event log cannot be read."))
        return CheckResult("events", DOWN, code, text, latency_ms=(time.perf_counter() - started) * 1000,
                           error=str(exc))
    except (sqlite3.Error, OSError) as exc:
        return CheckResult("events", DOWN, "event_log_error", "The event log cannot be read.",
                           latency_ms=(time.perf_counter() - started) * 1000, error=str(exc))
    return CheckResult("events", OK, "ok",
                       f"The durable event log holds {events} event(s) (head offset {head}); "
                       f"{groups} consumer group(s) keep positions.",
                       latency_ms=(time.perf_counter() - started) * 1000,
                       details={"events": events, "head": head, "consumer_groups": groups})
