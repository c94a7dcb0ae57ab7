"""Verifying the final delta of a cut-over: the rows of the keys it applied, read back on
both sides and compared in their canonical form (backbone.tier.canonical), inside the fence.
"""
from __future__ import annotations

import sqlite3

from psycopg import sql

from .canonical import row_parts
from .copy import to_ts
from .tables import TABLES, MovedTable


def _columns(table: MovedTable) -> list[int]:
    return [i for i, c in enumerate(table.columns) if c != "published_at"]  # the relay's, on one side only


def verify_keys(lite: sqlite3.Connection, pg, keys: list[tuple[str, tuple]]) -> list[str]:
    """Every key (table, key values as the bootstrap store holds them) whose row differs
    between the two sides (present on one only, or different in any compared column)."""
    differ: list[str] = []
    by_table: dict[str, dict[tuple, None]] = {}
    for tbl, key in keys:
        by_table.setdefault(tbl, {})[tuple(key)] = None
    for tbl, found in by_table.items():
        table = TABLES[tbl]
        at = _columns(table)
        names = [table.columns[i] for i in at]
        kinds = [table.kinds[i] for i in at]
        lite_sql = f"SELECT {', '.join(names)} FROM {tbl} WHERE {' AND '.join(f'{k} = ?' for k in table.key)}"
        pg_sql = sql.SQL("SELECT {} FROM {} WHERE {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) if k == "json" else sql.Identifier(c)
                               for c, k in zip(names, kinds)),
            sql.Identifier(tbl),
            sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in table.key))
        for key in found:
            mine = lite.execute(lite_sql, key).fetchone()
            typed = tuple(to_ts(v) if table.kind(k) == "ts" and isinstance(v, str) else v
                          for k, v in zip(table.key, key))
            theirs = pg.execute(pg_sql, typed).fetchone()
            if (mine is None) != (theirs is None) or (
                    mine is not None and row_parts(mine, kinds) != row_parts(theirs, kinds)):
                differ.append(f"{tbl} {key}")
    pg.rollback()
    return differ
