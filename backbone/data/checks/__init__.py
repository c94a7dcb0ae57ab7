"""The data path's readiness checks for `backbone validate`, judged against the contract's
`data` section: ingest freshness per dimension (`freshness.bars`, `freshness.trades`,
`freshness.macro`) and the query cache's hit and eviction ratios (`cache_ratios`). The
outbox backlog and the consumer lag are the events' (`backbone.events.checks`, which reads
the stores through the plumbing here); `cli/checks.py: data_checks` puts them in report order.

The verdicts are pure functions of what was read (`verdicts`, the events' too), tested without services.
The readers here are thin, one per tier, each bounded by the check's timeout, and load
their drivers only when they run: a bootstrap validate touches nothing but sqlite3.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Callable

from ...checks import DOWN, Check, CheckResult
from ...contract import Contract
from .verdicts import (Runs, cache_unreadable, clip, judge_cache, judge_event_log, judge_freshness, judge_lag,
                       judge_outbox)

__all__ = ["DIMENSIONS", "Runs", "cache_check", "cache_unreadable", "clip", "freshness_check", "freshness_checks",
           "judge_cache", "judge_event_log", "judge_freshness", "judge_lag", "judge_outbox", "read_journal"]

DIMENSIONS = ("bars", "trades", "macro")


def freshness_checks(contract: Contract, timeout_s: float) -> dict[str, Check]:
    """name -> check, in report order. The three freshness checks share one journal read."""
    journal = _Once(lambda: read_journal(contract, timeout_s), _database_errors(contract))
    return {f"freshness.{d}": (lambda d=d: freshness_check(contract, d, journal)) for d in DIMENSIONS}


# Per dimension, the newest run of any status and the newest successful one, in one scan
# (portable: PostgreSQL and SQLite alike). Only `ok` is a success: a rejected or interrupted
# run wrote nothing.
JOURNAL_SQL = ("SELECT dimension, status, finished_at, error, source, last_ok FROM ("
               "SELECT dimension, status, finished_at, error, source, "
               "max(CASE WHEN status = 'ok' THEN finished_at END) OVER (PARTITION BY dimension) AS last_ok, "
               "row_number() OVER (PARTITION BY dimension ORDER BY finished_at DESC) AS n "
               "FROM ingest_runs WHERE finished_at IS NOT NULL) runs WHERE n = 1")


def read_journal(contract: Contract, timeout_s: float) -> tuple[dt.datetime, dict[str, Runs]]:
    """(the store's clock, the runs per dimension)."""
    if contract.tier == "bootstrap":
        from ..store_sqlite import from_text
        with closing(_sqlite(contract, timeout_s)) as conn:
            rows = conn.execute(JOURNAL_SQL).fetchall()
        now, parse = dt.datetime.now(dt.timezone.utc), (lambda v: None if v is None else from_text(v))
    else:
        with _postgres(contract, timeout_s) as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            rows = conn.execute(JOURNAL_SQL).fetchall()
        parse = lambda v: v  # noqa: E731 (timestamptz arrives as an aware datetime)
    return now, {dim: Runs(parse(last_ok), status, parse(at), error, source)
                 for dim, status, at, error, source, last_ok in rows}


def freshness_check(contract: Contract, dimension: str, journal: "_Once") -> CheckResult:
    (read, ms), failure = journal()
    if failure is not None:
        return _unreadable(f"freshness.{dimension}", "The ingest journal", failure, ms)
    now, runs = read
    return judge_freshness(dimension, contract.data.freshness_slo_s.get(dimension), runs.get(dimension, Runs()), now,
                           ms)


def cache_check(contract: Contract, timeout_s: float) -> CheckResult:
    from ..cache import cache_policy
    policy = cache_policy(contract)  # the data API's (Backbone.__init__); institutional needs the redis section
    started = time.perf_counter()
    if contract.tier == "bootstrap":
        try:
            with closing(_sqlite(contract, timeout_s)) as conn:
                row = conn.execute("SELECT hits, misses, sets, evictions FROM cache_stats WHERE namespace = ?",
                                   (policy.namespace,)).fetchone()
        except _database_errors(contract) as exc:
            return cache_unreadable(policy.namespace, _reason(exc), _ms(started))
        counts = dict(zip(("hits", "misses", "sets", "evictions"), row or (0, 0, 0, 0)))
        return judge_cache(policy.namespace, counts, contract.data, policy.max_keys, _ms(started))
    import redis

    from ...clients.redis import redis_client
    from ..cache import redis_shared_stats
    client = None
    try:
        client = redis_client(contract.redis, timeout_s)
        counts = redis_shared_stats(client, policy.namespace)
    except (redis.RedisError, OSError) as exc:
        return cache_unreadable(policy.namespace, _reason(exc), _ms(started))
    finally:
        if client is not None:
            client.close()
    return judge_cache(policy.namespace, counts, contract.data, policy.max_keys, _ms(started))


# --- plumbing ------------------------------------------------------------------------------

class _Once:
    """Runs `read` once for every caller, on whichever thread asks first; returns
    ((value, ms), error)."""

    def __init__(self, read: Callable, errors: tuple[type[BaseException], ...]):
        self.read, self.errors, self.lock, self.result = read, errors, threading.Lock(), None

    def __call__(self):
        with self.lock:
            if self.result is None:
                started = time.perf_counter()
                try:
                    self.result = ((self.read(), _ms(started)), None)
                except self.errors as exc:
                    self.result = ((None, _ms(started)), exc)
        return self.result


def _sqlite(contract: Contract, timeout_s: float) -> sqlite3.Connection:
    """The embedded store, which must exist (validate never creates one by reading it)."""
    uri = Path(contract.bootstrap.store).resolve().as_uri() + "?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=timeout_s)


def _postgres(contract: Contract, timeout_s: float):
    from ...clients import timescale as timescale_client
    return timescale_client.connect(contract.timescale, timeout_s, autocommit=True, prepare=False,
                                    application_name="backbone-validate")


def _database_errors(contract: Contract) -> tuple[type[BaseException], ...]:
    """The errors that mean "the store could not be read" on this tier (named up front: a
    module another check is still importing cannot be looked up safely)."""
    if contract.tier == "bootstrap":
        return sqlite3.Error, OSError
    import psycopg
    return psycopg.Error, OSError


def _reason(exc: BaseException) -> str:
    from ...migrate.check import reason
    return reason(exc) or type(exc).__name__


def _unreadable(name: str, what: str, exc: BaseException, latency_ms: float | None) -> CheckResult:
    why = _reason(exc)
    hint = " (run `backbone migrate apply`)" if "no such table" in why or "does not exist" in why else ""
    return CheckResult(name, DOWN, "unreachable", f"{what} could not be read{hint}.", latency_ms, error=why)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
