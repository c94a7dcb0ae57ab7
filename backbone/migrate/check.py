"""The "migrations" readiness check: schema at head, no drift, Timescale policies as declared.

Fast path: the plain driver reads the revision and the catalogue and compares them with the
stored description of a freshly migrated database (`catalog`), and reads the policies
directly. Only when something differs do Alembic and SQLAlchemy load, to name each
difference exactly as `migrate check` does.
"""
from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from ..checks import DEGRADED, DOWN, OK, CheckResult
from ..contract import Contract
from . import catalog
from .policies import endpoint_diffs, timescale_status
from .state import State


def timescale_note(contract: Contract, state: State) -> tuple[str, str] | None:
    """(status, sentence) when TimescaleDB is absent on a PostgreSQL target."""
    ts = state.timescale
    if state.dialect != "postgresql" or (ts and ts.installed):
        return None
    if ts and ts.available and not ts.preloaded:
        why = ("the server has the timescaledb extension but does not preload it: add 'timescaledb' to "
               "shared_preload_libraries and restart, then run `backbone migrate apply`; until then plain tables, "
               "no hypertables or policies")
    else:
        why = "timescaledb extension not installed: plain tables, no hypertables or policies"
    if contract.timescale.require_timescaledb:
        return DEGRADED, why
    return OK, "plain PostgreSQL (accepted by the contract): no hypertables or policies"


def database_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "the database could not be inspected", from whichever drivers
    this process has loaded (the fast path never loads SQLAlchemy or Alembic)."""
    errors: list[type[BaseException]] = [sqlite3.Error, OSError]
    for module, name in (("psycopg", "Error"), ("sqlalchemy.exc", "SQLAlchemyError"), ("alembic.util", "CommandError")):
        error = getattr(sys.modules.get(module), name, None)  # None while another thread is importing it
        if isinstance(error, type):
            errors.append(error)
    return tuple(errors)


def reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def fast_state(contract: Contract, timeout_s: float) -> State | None:
    """The state through the plain driver, or None when the revision or the catalogue is not
    exactly the expected one (Alembic then names what is pending or different)."""
    want = catalog.expected()
    if contract.tier == "bootstrap":
        store = Path(contract.bootstrap.store)
        store.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(store, timeout=timeout_s) as conn:
            has_version = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                       "AND name = 'alembic_version'").fetchone()[0]
            current = _one(conn.execute("SELECT version_num FROM alembic_version")) if has_version else None
            return _at_head(conn, "sqlite", current, want)
    from ..clients import timescale as timescale_client
    # one short-lived connection: server-side prepared statements would buy nothing
    with timescale_client.connect(contract.timescale, timeout_s, autocommit=True, prepare=False,
                                  statement_timeout=False) as conn:
        def scalar(sql: str, params: dict):
            return _one(conn.execute(sql, params))
        has_version = scalar("SELECT to_regclass('alembic_version') IS NOT NULL", {})
        current = scalar("SELECT version_num FROM alembic_version", {}) if has_version else None
        state = _at_head(conn, "postgresql", current, want)
        if state is not None:
            state.timescale = timescale_status(scalar)
            if state.timescale.installed:
                state.policy_diffs = [d.sentence() for d in endpoint_diffs(scalar, contract.timescale)]
        return state


def _one(cursor):
    row = cursor.fetchone()
    return row[0] if row else None


def _at_head(conn, dialect: str, current: str | None, want: dict) -> State | None:
    if current != want["head"]:
        return None
    if not catalog.matches(catalog.describe(conn, dialect, want["tables"]), want[dialect]):
        return None
    return State(dialect, current, want["head"], [])


def migrations_check(contract: Contract, timeout_s: float) -> CheckResult:
    """The migrate check as one result, for `backbone validate` and `migrate check`."""
    started = time.perf_counter()
    try:
        state = fast_state(contract, timeout_s)
        if state is None:
            from . import ops
            state = ops.check(ops.engine_for(contract, timeout_s), contract)
    except database_errors() as exc:
        return CheckResult("migrations", DOWN, "unreachable", "The schema could not be inspected.",
                           latency_ms=(time.perf_counter() - started) * 1000, error=reason(exc))
    ms = (time.perf_counter() - started) * 1000
    details = {"current": state.current, "head": state.head, "drift": state.drift}
    if state.pending:
        return CheckResult("migrations", DOWN, "migrations_pending",
                           f"{len(state.pending)} migration(s) pending: run `backbone migrate apply`.",
                           latency_ms=ms, details=details)
    if state.drift:
        return CheckResult("migrations", DOWN, "schema_drift", "Drift: " + "; ".join(state.drift) + ".",
                           latency_ms=ms, details=details)
    note = timescale_note(contract, state)
    if note and note[0] == DEGRADED:
        return CheckResult("migrations", DEGRADED, "timescaledb_missing", f"At {state.head}; {note[1]}.",
                           latency_ms=ms, details=details)
    return CheckResult("migrations", OK, "ok", f"Schema at {state.head}, no drift" + (f"; {note[1]}." if note else "."),
                       latency_ms=ms, details=details)
