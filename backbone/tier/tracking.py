"""Change tracking for a switch: triggers that append the primary key of every row written
to a moved table into `tier_changes`, on the side being moved from.

- bootstrap store (switch): installed before the copy starts, so whatever applications
  write during the copy is caught up afterwards; dropped at cut-over.
- TimescaleDB (the reverse stream): installed at cut-over, before the fence is released,
  so every write on the institutional tier is mirrored back until `tier complete`. A
  session that applies a switch's own changes sets `backbone.tier_apply` and is not tracked.

A key is a JSON array of the key columns' values; the applier reads the row's current
version by it (an upsert), or deletes it on the other side when it is gone.
"""
from __future__ import annotations

import sqlite3

from psycopg import sql

from .tables import TABLES

APPLY_SETTING = "backbone.tier_apply"


def _sqlite_key(alias: str, key: tuple[str, ...]) -> str:
    return "json_array(" + ", ".join(f"{alias}.{k}" for k in key) + ")"


def install_sqlite(conn: sqlite3.Connection) -> None:
    for t in TABLES.values():
        new, old = _sqlite_key("NEW", t.key), _sqlite_key("OLD", t.key)
        moved = " OR ".join(f"OLD.{k} IS NOT NEW.{k}" for k in t.key)
        add = f"INSERT INTO tier_changes (tbl, key) VALUES ('{t.name}', "
        conn.execute(f"CREATE TRIGGER IF NOT EXISTS tier_track_{t.name}_ins AFTER INSERT ON {t.name} "
                     f"BEGIN {add}{new}); END")
        conn.execute(f"CREATE TRIGGER IF NOT EXISTS tier_track_{t.name}_upd AFTER UPDATE ON {t.name} "
                     f"BEGIN {add}{new}); INSERT INTO tier_changes (tbl, key) SELECT '{t.name}', {old} "
                     f"WHERE {moved}; END")
        conn.execute(f"CREATE TRIGGER IF NOT EXISTS tier_track_{t.name}_del AFTER DELETE ON {t.name} "
                     f"BEGIN {add}{old}); END")


def remove_sqlite(conn: sqlite3.Connection) -> None:
    for t in TABLES.values():
        for op in ("ins", "upd", "del"):
            conn.execute(f"DROP TRIGGER IF EXISTS tier_track_{t.name}_{op}")


def sqlite_installed(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'tier_track_%'"
                        ).fetchone()[0] > 0


def install_pg(pg) -> None:
    """Inside the caller's transaction."""
    for t in TABLES.values():
        fn = sql.Identifier(f"tier_track_{t.name}")
        keys = lambda rec: sql.SQL(", ").join(sql.SQL(rec + ".{}").format(sql.Identifier(k)) for k in t.key)  # noqa: E731
        pg.execute(sql.SQL(
            "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF coalesce(current_setting({setting}, true), '') = 'on' THEN RETURN NULL; END IF; "
            "IF TG_OP <> 'DELETE' THEN INSERT INTO tier_changes (tbl, key) "
            "VALUES ({name}, json_build_array({new})::text); END IF; "
            "IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR ({old}) IS DISTINCT FROM ({new})) THEN "
            "INSERT INTO tier_changes (tbl, key) VALUES ({name}, json_build_array({old})::text); END IF; "
            "RETURN NULL; END $$").format(fn=fn, setting=sql.Literal(APPLY_SETTING), name=sql.Literal(t.name),
                                         new=keys("NEW"), old=keys("OLD")))
        pg.execute(sql.SQL("DROP TRIGGER IF EXISTS tier_track ON {}").format(sql.Identifier(t.name)))
        # the outbox: new events only (the relay's marks and prunes are the institutional
        # tier's own bookkeeping; the bootstrap event log is never pruned)
        events = "INSERT" if t.name == "outbox" else "INSERT OR UPDATE OR DELETE"
        pg.execute(sql.SQL("CREATE TRIGGER tier_track AFTER {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()").format(
            sql.SQL(events), sql.Identifier(t.name), fn))


def remove_pg(pg) -> None:
    for t in TABLES.values():
        pg.execute(sql.SQL("DROP TRIGGER IF EXISTS tier_track ON {}").format(sql.Identifier(t.name)))
        pg.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(f"tier_track_{t.name}")))


def pg_installed(pg) -> bool:
    return pg.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'tier_track'").fetchone()[0] > 0
