"""The data path's readiness checks for `backbone validate`, judged against the contract's
`data` section: ingest freshness per dimension (`freshness.bars`, `freshness.trades`,
`freshness.macro`), the outbox backlog (`outbox`), the bridge's consumer lag
(`consumer_lag`) and the query cache's hit and eviction ratios (`cache_ratios`).

The verdicts are pure functions of what was read (`verdicts`), tested without services.
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

__all__ = ["DIMENSIONS", "Runs", "cache_check", "cache_unreadable", "clip", "consumer_lag_check", "data_checks",
           "freshness_check", "judge_cache", "judge_event_log", "judge_freshness", "judge_lag", "judge_outbox",
           "outbox_check", "read_journal"]

DIMENSIONS = ("bars", "trades", "macro")


def data_checks(contract: Contract, timeout_s: float) -> dict[str, Check]:
    """name -> check, in report order. The three freshness checks share one journal read."""
    journal = _Once(lambda: read_journal(contract, timeout_s), _database_errors(contract))
    checks: dict[str, Check] = {f"freshness.{d}": (lambda d=d: freshness_check(contract, d, journal))
                                for d in DIMENSIONS}
    checks["outbox"] = lambda: outbox_check(contract, timeout_s)
    checks["consumer_lag"] = lambda: consumer_lag_check(contract, timeout_s)
    checks["cache_ratios"] = lambda: cache_check(contract, timeout_s)
    return checks


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


def outbox_check(contract: Contract, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        if contract.tier == "bootstrap":
            with closing(_sqlite(contract, timeout_s)) as conn:
                events = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            return judge_event_log(events, _ms(started))
        from ...events.relay import backlog
        with _postgres(contract, timeout_s) as conn:
            found = backlog(conn)
    except _database_errors(contract) as exc:
        return _unreadable("outbox", "The outbox", exc, _ms(started))
    return judge_outbox(found.events, found.oldest_age_s, contract.data.outbox_max_age_s, _ms(started))


def consumer_lag_check(contract: Contract, timeout_s: float) -> CheckResult:
    group, bound = contract.data.consumer_group, contract.data.consumer_lag_max
    started = time.perf_counter()
    if contract.tier == "bootstrap":
        from ...events.bridge import LOG_TOPIC, log_lag
        try:
            with closing(_sqlite(contract, timeout_s)) as conn:
                stored = conn.execute("SELECT position FROM consumer_positions WHERE group_id = ?", (group,)).fetchone()
                lag = log_lag(_Queries(conn), stored[0] if stored else 0)
        except _database_errors(contract) as exc:
            return _unreadable("consumer_lag", "The event log", exc, _ms(started))
        return judge_lag(group, LOG_TOPIC, {f"{LOG_TOPIC}[0]": lag}, stored is not None, bound, _ms(started))
    from confluent_kafka import KafkaException

    from ...clients.kafka import kafka_text
    from ...errors import ConfigError
    from ...events.bridge import group_lag
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            lag, committed = group_lag(contract, group, max(0.5, deadline - time.monotonic()))
            break
        except ConfigError as exc:
            return CheckResult("consumer_lag", DOWN, "topic_not_declared", f"{exc}.", _ms(started))
        except KafkaException as exc:
            # a cluster just started is still placing its group coordinators: ask again
            if _transient(exc) and time.monotonic() + 0.25 < deadline:
                time.sleep(0.25)
                continue
            return CheckResult("consumer_lag", DOWN, "unreachable", f"The lag of group {group!r} could not be read "
                               "from Kafka.", _ms(started), error=kafka_text(exc))
    return judge_lag(group, contract.data.events_topic, lag, committed, bound, _ms(started))


def _transient(exc: BaseException) -> bool:
    from confluent_kafka import KafkaError
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    return err is not None and (err.retriable() or err.code() in (
        KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE))


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


class _Queries:
    """`store.query(statement, params)` over a plain sqlite3 connection, for `log_lag`."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def query(self, statement: str, params: dict) -> list[tuple]:
        return self.conn.execute(statement, params).fetchall()


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
