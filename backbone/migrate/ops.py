"""Plan, apply and check with Alembic and SQLAlchemy: versioned schema plus the
TimescaleDB hypertables and policies the contract declares.

The versioned part is ordinary Alembic. The policy part is declarative: the contract says
what each hypertable's chunk interval, retention and compression should be, `apply` makes
it so (idempotently) and `check` names every difference. Table names come only from
`policies.HYPERTABLES` (config keys are validated against it) and intervals are bound
parameters, so nothing from config is spliced into SQL.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from ..clients import timescale as timescale_client
from ..contract import Contract, TablePolicy
from .policies import CANDLES, HYPERTABLES, endpoint_diffs, policy_diffs, timescale_status
from .schema import metadata
from .state import State

MIGRATIONS = Path(__file__).parent / "revisions"
_WRITE = re.compile(r"^\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|TRUNCATE|GRANT|COMMENT)\b"
                    r"|\b(create_hypertable|set_chunk_time_interval|add_retention_policy|remove_retention_policy"
                    r"|add_compression_policy|remove_compression_policy)\s*\(", re.I)


def engine_for(contract: Contract, timeout_s: float = 10, duty: str | None = None) -> Engine:
    """The engine migrations use; `duty="owner"` for what changes the schema (`apply`, `plan`:
    the schema's owner role where the contract names one, docs/security.md)."""
    if contract.tier == "bootstrap":
        store = Path(contract.bootstrap.store)
        store.parent.mkdir(parents=True, exist_ok=True)
        return create_engine(f"sqlite:///{store}", poolclass=NullPool)
    # one connection per use: a migration runs once
    return timescale_client.engine(contract.timescale, timeout_s, pooled=False, duty=duty)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def inspect_state(conn: Connection, contract: Contract) -> State:
    script = ScriptDirectory.from_config(alembic_config())
    current = MigrationContext.configure(conn).get_current_revision()
    head = script.get_current_head()
    pending = [r.revision for r in reversed(list(script.iterate_revisions(head, current)))]
    state = State(conn.dialect.name, current, head, pending)
    if not pending:
        state.schema_diffs = describe_schema_diffs(conn)
    if conn.dialect.name == "postgresql":
        state.timescale = timescale_status(_scalar(conn))
        if state.timescale.installed and not pending:
            state.policy_diffs = [d.sentence() for d in endpoint_diffs(_scalar(conn), contract.timescale)]
    return state


def _scalar(conn: Connection):
    return lambda sql, params: conn.exec_driver_sql(sql, params).scalar()


def describe_schema_diffs(conn: Connection) -> list[str]:
    def include(obj, name, type_, reflected, compare_to):
        if type_ == "table" and (name == "alembic_version" or (reflected and compare_to is None)):
            return False  # tables that are not ours are not drift
        if type_ == "index" and reflected and compare_to is None:
            return False  # TimescaleDB adds its own time indexes to hypertables
        return True
    ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
    return [_diff_sentence(d) for d in compare_metadata(ctx, metadata)]


def _diff_sentence(diff) -> str:
    if isinstance(diff, list):  # modify_* entries come grouped per column
        kind, _schema, table, column, _info, old, new = diff[0]
        what = {"modify_type": "type", "modify_nullable": "nullable", "modify_default": "default"}.get(kind, kind)
        return f"{table}.{column}: {what} is {old}, declared {new}"
    kind = diff[0]
    if kind == "add_column":
        return f"{diff[2]}.{diff[3].name}: column missing"
    if kind == "remove_column":
        return f"{diff[2]}.{diff[3].name}: column not declared"
    if kind == "add_table":
        return f"{diff[1].name}: table missing"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        return f"{diff[1].table.name}: {kind.replace('_', ' ')} {diff[1].name}"
    return f"{kind}: {diff[1:]}"


def policy_statements(conn: Connection, state: State, policies: dict[str, TablePolicy]) -> list[tuple[str, dict]]:
    """The statements (with bound parameters) that bring the policies in line."""
    ts = state.timescale
    if ts is None or not (ts.installed or ts.creatable):
        return []  # absent, or present but not preloaded: the check says which
    stmts: list[tuple[str, dict]] = []
    if not ts.installed:
        stmts.append(("CREATE EXTENSION IF NOT EXISTS timescaledb", {}))
    current = {(d.table, d.setting): d for d in policy_diffs(_scalar(conn), policies)} if ts.installed else None
    for table, column in HYPERTABLES.items():
        want = policies.get(table)
        if want is None:
            continue
        p = {"t": table, "c": column}

        def differs(setting: str) -> bool:
            return current is None or (table, setting) in current
        if differs("hypertable"):
            stmts.append(("SELECT create_hypertable(CAST(:t AS regclass), :c, chunk_time_interval => "
                          "make_interval(days => :d), migrate_data => true, if_not_exists => true)",
                          p | {"d": want.chunk_interval_days}))
        elif differs("chunk interval"):
            stmts.append(("SELECT set_chunk_time_interval(CAST(:t AS regclass), make_interval(days => :d))",
                          p | {"d": want.chunk_interval_days}))
        if differs("hypertable") or differs("retention"):
            stmts.append(("SELECT remove_retention_policy(CAST(:t AS regclass), if_exists => true)", p))
            if want.retention_days is not None:
                stmts.append(("SELECT add_retention_policy(CAST(:t AS regclass), make_interval(days => :d))",
                              p | {"d": want.retention_days}))
        if differs("hypertable") or differs("compression after"):
            stmts.append(("SELECT remove_compression_policy(CAST(:t AS regclass), if_exists => true)", p))
            if want.compress_after_days is not None:
                # segmenting by symbol (a constant of our schema) keeps per-symbol scans fast
                segment = "calendar" if table == "macro_events" else "symbol"
                stmts.append((f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table)} SET "
                              f"(timescaledb.compress, timescaledb.compress_segmentby = '{segment}')", {}))
                stmts.append(("SELECT add_compression_policy(CAST(:t AS regclass), make_interval(days => :d))",
                              p | {"d": want.compress_after_days}))
    return stmts


def candle_statements(conn: Connection, state: State, timescale) -> list[tuple[str, dict]]:
    """The 1-minute candles continuous aggregate (real-time aggregation on) and its refresh
    policy, created or brought in line."""
    ts = state.timescale
    if ts is None or not (ts.installed or ts.creatable):
        return []
    current = {d.setting for d in endpoint_diffs(_scalar(conn), timescale) if d.table == CANDLES} \
        if ts.installed else {"continuous aggregate"}
    candles = timescale.candles
    stmts: list[tuple[str, dict]] = []
    view = conn.dialect.identifier_preparer.quote(CANDLES)
    if "continuous aggregate" in current:
        stmts.append((f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} WITH (timescaledb.continuous, "
                      "timescaledb.materialized_only = false) AS SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket, "
                      "symbol, first(price, ts) AS open, max(price) AS high, min(price) AS low, "
                      "last(price, ts) AS close, sum(size) AS volume, count(*) AS trades "
                      "FROM intraday_trades GROUP BY bucket, symbol WITH NO DATA", {}))
    if current & {"continuous aggregate", "refresh policy"}:
        p = {"v": CANDLES, "h": candles.refresh_window_hours, "lag": candles.refresh_lag_minutes,
             "every": candles.refresh_every_minutes}
        stmts.append(("SELECT remove_continuous_aggregate_policy(CAST(:v AS regclass), if_exists => true)", p))
        stmts.append(("SELECT add_continuous_aggregate_policy(CAST(:v AS regclass), "
                      "start_offset => make_interval(hours => :h), end_offset => make_interval(mins => :lag), "
                      "schedule_interval => make_interval(mins => :every))", p))
    return stmts


@dataclass
class Counter:
    reads: int = 0
    writes: int = 0

    def attach(self, engine: Engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def _count(conn, cursor, statement, parameters, context, executemany):
            if _WRITE.search(statement):
                self.writes += 1
            else:
                self.reads += 1


def render_plan(engine: Engine, contract: Contract) -> tuple[State, list[str]]:
    """What `apply` would run, as SQL, without writing anything."""
    with engine.connect() as conn:
        state = inspect_state(conn, contract)
        sql: list[str] = []
        if state.pending:
            cfg = alembic_config()
            buf = io.StringIO()
            cfg.output_buffer = buf
            cfg.attributes["url"] = f"{conn.dialect.name}://"
            command.upgrade(cfg, f"{state.current or 'base'}:head", sql=True)
            sql.append(buf.getvalue().strip())
        for stmt, params in _statements(conn, state, contract):
            sql.append(_inline(stmt, params) + ";")
        conn.rollback()
    return state, sql


def _statements(conn: Connection, state: State, contract: Contract) -> list[tuple[str, dict]]:
    if contract.timescale is None:
        return []
    return policy_statements(conn, state, contract.timescale.policies) + candle_statements(conn, state,
                                                                                           contract.timescale)


def _inline(stmt: str, params: dict) -> str:
    # for display only; execution always binds
    for key, value in params.items():
        stmt = stmt.replace(f":{key}", f"'{value}'" if isinstance(value, str) else str(value))
    return stmt


def apply(engine: Engine, contract: Contract) -> tuple[State, Counter]:
    """Upgrade to head, then bring the policies in line. One connection throughout
    (a single session keeps the DDL and the inspection that follows it together)."""
    counter = Counter()
    counter.attach(engine)
    with engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
        state = inspect_state(conn, contract)
        for stmt, params in _statements(conn, state, contract):
            conn.execute(text(stmt), params)
        conn.commit()
        final = inspect_state(conn, contract)
        conn.rollback()
    return final, counter


def upgrade_schema_only(engine: Engine) -> str:
    """Alembic to head, no policies: how `catalog --write` builds the expected catalogue."""
    with engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def check(engine: Engine, contract: Contract) -> State:
    with engine.connect() as conn:
        state = inspect_state(conn, contract)
        conn.rollback()
    return state
