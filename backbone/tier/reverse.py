"""The reverse stream: writes made on the institutional tier after a switch, mirrored back
into the bootstrap store so that a rollback loses nothing.

The TimescaleDB triggers (`tracking.install_pg`, installed at cut-over) log each written
key; `sync` reads each key's current row there and upserts it into the bootstrap store (or
deletes it there), moving the checkpoint (`tier_state` `reverse` in the bootstrap store) in
the same SQLite transaction, so a killed sync resumes exactly where it stopped.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import psycopg
from psycopg import sql

from .copy import to_ts
from ..data.active_tier import get_state, set_state
from .tables import TABLES, MovedTable


def checkpoint(lite: sqlite3.Connection) -> dict:
    return get_state(lite, "reverse") or {"seq": 0, "at": None}


def lag(lite: sqlite3.Connection, pg: psycopg.Connection) -> int:
    top = pg.execute("SELECT coalesce(max(seq), 0) FROM tier_changes").fetchone()[0]
    pg.rollback()
    return max(0, top - checkpoint(lite)["seq"])


def _lite_value(kind: str, value):
    if value is None:
        return None
    if kind == "ts":
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if kind == "json":
        return json.dumps(value, separators=(",", ":"))
    return value


def sync(lite: sqlite3.Connection, pg: psycopg.Connection, limit: int = 20_000, deadline: float | None = None,
         in_transaction: bool = False) -> tuple[int, list[tuple[str, tuple]]]:
    """Apply the institutional tier's logged writes to the bootstrap store until none are
    left (or the monotonic `deadline`); (changes applied, keys touched, in SQLite form).
    With `in_transaction`, the caller holds the store's write transaction (the fence)."""
    applied, touched = 0, []
    top = pg.execute("SELECT coalesce(max(seq), 0) FROM tier_changes").fetchone()[0]
    pg.rollback()
    seen = {"top": top, "at": dt.datetime.now(dt.timezone.utc).isoformat()}  # what a forced rollback reports
    if in_transaction:
        set_state(lite, "reverse_seen", seen)
    else:
        lite.execute("BEGIN IMMEDIATE")
        set_state(lite, "reverse_seen", seen)
        lite.execute("COMMIT")
    while deadline is None or time.monotonic() < deadline:
        after = checkpoint(lite)["seq"]
        changes = pg.execute("SELECT seq, tbl, key FROM tier_changes WHERE seq > %s ORDER BY seq LIMIT %s",
                             (after, limit)).fetchall()
        if not changes:
            pg.rollback()
            break
        keys: dict[str, dict[tuple, None]] = {}
        for _seq, tbl, key in changes:
            keys.setdefault(tbl, {})[tuple(json.loads(key))] = None
        rows = {tbl: _current(pg, TABLES[tbl], list(found)) for tbl, found in keys.items()}
        pg.rollback()
        if not in_transaction:
            lite.execute("BEGIN IMMEDIATE")
        try:
            for tbl, (present, gone) in rows.items():
                touched.extend(_apply(lite, TABLES[tbl], present, gone))
            set_state(lite, "reverse", {"seq": changes[-1][0], "at": dt.datetime.now(dt.timezone.utc).isoformat()})
        except BaseException:
            if not in_transaction:
                lite.execute("ROLLBACK")
            raise
        if not in_transaction:
            lite.execute("COMMIT")
        applied += len(changes)
    return applied, touched


def _current(pg: psycopg.Connection, table: MovedTable, keys: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """(current rows, keys no longer there) on the institutional tier."""
    match = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in table.key)
    select = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.columns)), sql.Identifier(table.name), match)
    present, gone = [], []
    for key in keys:
        typed = tuple(to_ts(v) if table.kind(k) == "ts" and isinstance(v, str) else v for k, v in zip(table.key, key))
        row = pg.execute(select, typed).fetchone()
        if row:
            present.append(row)
        else:
            gone.append(typed)
    return present, gone


def _apply(lite: sqlite3.Connection, table: MovedTable, present: list[tuple], gone: list[tuple]) -> list[tuple]:
    cols = ", ".join(table.columns)
    changing = [c for c in table.columns if c not in table.key]
    action = "DO NOTHING" if table.name == "outbox" else \
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in changing)
    values = [tuple(_lite_value(k, v) for k, v in zip(table.kinds, row)) for row in present]
    lite.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({', '.join('?' * len(table.columns))}) "
                     f"ON CONFLICT ({', '.join(table.key)}) {action}", values)
    keys = [tuple(_lite_value(table.kind(k), v) for k, v in zip(table.key, key)) for key in gone]
    lite.executemany(f"DELETE FROM {table.name} WHERE {' AND '.join(f'{k} = ?' for k in table.key)}", keys)
    at = table.key_at
    return [(table.name, tuple(v[i] for i in at)) for v in values] + [(table.name, k) for k in keys]


def mirror_once(contract) -> int | None:
    """One pass of the reverse stream for a deployment (what `serve` runs every second):
    the changes mirrored, or None while no switch to the institutional tier is running."""
    from . import copy as mover
    from ..data.active_tier import read_active
    from .switch import open_store
    if not Path(contract.bootstrap.store).exists():
        return None  # never bootstrapped here: nothing to mirror into (and nothing to create)
    lite = open_store(contract)
    try:
        active, state = read_active(lite), get_state(lite, "switch") or {}
        if active is None or active.tier != "institutional" or state.get("phase") != "switched":
            return None
        with mover.open_target(contract.timescale, 5.0) as pg:
            return sync(lite, pg)[0]
    finally:
        lite.close()
