"""The events' readiness checks for `backbone validate`, judged against the contract's `data`
section: the outbox backlog (`outbox`) and the bridge's consumer lag (`consumer_lag`).

The verdicts are the data path's, pure (`backbone.data.checks.verdicts`); the readers here
are thin, one per tier, each bounded by the check's timeout, and load their drivers only
when they run. `cli/checks.py: data_checks` puts them in report order with the data checks.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import closing

from ..checks import DOWN, Check, CheckResult
from ..contract import Contract
from ..data.checks import _database_errors, _ms, _postgres, _sqlite, _unreadable
from ..data.checks.verdicts import judge_event_log, judge_lag, judge_outbox


def event_checks(contract: Contract, timeout_s: float) -> dict[str, Check]:
    """name -> check, in report order."""
    return {"outbox": lambda: outbox_check(contract, timeout_s),
            "consumer_lag": lambda: consumer_lag_check(contract, timeout_s)}


def outbox_check(contract: Contract, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        if contract.tier == "bootstrap":
            with closing(_sqlite(contract, timeout_s)) as conn:
                events = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            return judge_event_log(events, _ms(started))
        from .relay import backlog
        with _postgres(contract, timeout_s) as conn:
            found = backlog(conn)
    except _database_errors(contract) as exc:
        return _unreadable("outbox", "The outbox", exc, _ms(started))
    return judge_outbox(found.events, found.oldest_age_s, contract.data.outbox_max_age_s, _ms(started))


def consumer_lag_check(contract: Contract, timeout_s: float) -> CheckResult:
    group, bound = contract.data.consumer_group, contract.data.consumer_lag_max
    started = time.perf_counter()
    if contract.tier == "bootstrap":
        from .bridge import LOG_TOPIC, log_lag
        try:
            with closing(_sqlite(contract, timeout_s)) as conn:
                stored = conn.execute("SELECT position FROM consumer_positions WHERE group_id = ?", (group,)).fetchone()
                lag = log_lag(_Queries(conn), stored[0] if stored else 0)
        except _database_errors(contract) as exc:
            return _unreadable("consumer_lag", "The event log", exc, _ms(started))
        return judge_lag(group, LOG_TOPIC, {f"{LOG_TOPIC}[0]": lag}, stored is not None, bound, _ms(started))
    from confluent_kafka import KafkaException

    from ..clients.kafka import kafka_text
    from ..errors import ConfigError
    from .bridge import group_lag
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


class _Queries:
    """`store.query(statement, params)` over a plain sqlite3 connection, for `log_lag`."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def query(self, statement: str, params: dict) -> list[tuple]:
        return self.conn.execute(statement, params).fetchall()
