"""`backbone tier plan`: what a switch would do, and whether it can, writing nothing.

What moves (rows per table in the bootstrap store, the events of its log, the cache keys
the switch warms), what the target already holds (a switch keeps those rows and verifies
them against the source), and an estimated copy time from a measured sample: a chunk of
the largest table converted and sent with binary COPY into a table shaped like the real one
on the target, in a transaction that is rolled back.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from ..contract import Contract
from . import copy as mover
from ..data.active_tier import read_active
from .switch import open_store
from .tables import TABLES

SAMPLE = 20_000


@dataclass
class Plan:
    active: str
    rows: dict[str, int] = field(default_factory=dict)            # table -> rows in the bootstrap store
    on_target: dict[str, int | None] = field(default_factory=dict)
    events: int = 0
    cache_keys: int = 0
    sample_rows_per_s: float | None = None
    estimate_s: float | None = None
    preflight: list[dict] = field(default_factory=list)          # {check, status, summary}
    target_error: str | None = None

    @property
    def blockers(self) -> list[str]:
        found = [f"{p['check']}: {p['summary']}" for p in self.preflight if p["status"] == "down"]
        return found + ([f"target: {self.target_error}"] if self.target_error else [])

    @property
    def exit_code(self) -> int:
        return 1 if self.blockers else 0

    def to_dict(self) -> dict:
        return {**self.__dict__, "blockers": self.blockers, "total_rows": sum(self.rows.values())}


def make_plan(source: Contract, target: Contract, max_keys: int) -> Plan:
    lite = open_store(source)
    try:
        active = read_active(lite)
        plan = Plan(active.tier if active else "bootstrap")
        plan.rows = {t: lite.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        plan.events = plan.rows["outbox"]
        symbols = lite.execute("SELECT count(DISTINCT symbol) FROM daily_bars").fetchone()[0]
        plan.cache_keys = min(symbols, max_keys)
        try:
            _measure(lite, target, plan)
        except Exception as exc:  # unreachable or unmigrated: the plan says so
            plan.target_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return plan
    finally:
        lite.close()


PG_KIND = {"text": "text", "ts": "timestamptz", "float": "float8", "int": "int8", "json": "jsonb"}


def _measure(lite: sqlite3.Connection, target: Contract, plan: Plan) -> None:
    with mover.open_target(target.timescale, 5.0, duty="owner") as pg:  # it samples the copy rate, as the switch writes
        migrated = pg.execute("SELECT to_regclass('daily_bars') IS NOT NULL").fetchone()[0]
        for t in TABLES:
            plan.on_target[t] = pg.execute(f"SELECT count(*) FROM {t}").fetchone()[0] if migrated else None
        pg.rollback()
        name = max(("daily_bars", "intraday_trades"), key=lambda t: plan.rows[t])
        table = TABLES[name]
        rows = lite.execute(f"SELECT {', '.join(table.columns)} FROM {name} LIMIT ?", (SAMPLE,)).fetchall()
        if not rows:
            return
        convert, cols = mover.converter(table), ", ".join(table.columns)
        columns = ", ".join(f"{c} {PG_KIND[k]}" for c, k in zip(table.columns, table.kinds))
        hyper = pg.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
        pg.rollback()
        started = time.perf_counter()
        # a table shaped like the real one (key, WAL, a hypertable when TimescaleDB is there),
        # created, filled and rolled back: nothing is left behind
        with pg.transaction(force_rollback=True):
            pg.execute(f"CREATE TABLE tier_plan_sample ({columns}, PRIMARY KEY ({', '.join(table.key)}))")
            if hyper:
                pg.execute("SELECT create_hypertable('tier_plan_sample', 'ts')")
            with pg.cursor().copy(f"COPY tier_plan_sample ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([PG_KIND[k] for k in table.kinds])
                for row in rows:
                    copy.write_row(convert(row))
        plan.sample_rows_per_s = len(rows) / (time.perf_counter() - started)
        plan.estimate_s = sum(plan.rows.values()) / plan.sample_rows_per_s
