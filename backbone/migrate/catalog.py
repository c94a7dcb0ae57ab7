"""The cheap answer to "has the schema drifted?", without Alembic or SQLAlchemy.

`describe` reads our tables' columns, constraints, indexes and comments from the catalogue
through the plain driver (psycopg or sqlite3). `EXPECTED` is that description taken from a
database freshly migrated to head (`python -m backbone.migrate.catalog --write`; the
integration tests fail when it no longer matches the migrations). When the live
description equals the expected one, Alembic's comparison would find nothing either; when it
differs, the readiness check loads Alembic to name each difference (and some differences,
such as an extra index, Alembic does not count as drift).
"""
from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

EXPECTED_FILE = Path(__file__).parent / "revisions" / "catalog.json"
Description = dict[str, dict[str, Any]]

_PG_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, col_description(c.oid, a.attnum)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY(%(tables)s) AND a.attnum > 0 AND NOT a.attisdropped"""
_PG_TABLES = """
SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY(%(tables)s) AND c.relkind IN ('r', 'p')"""
_PG_CONSTRAINTS = """
SELECT c.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid) FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY(%(tables)s) AND con.contype IN ('p', 'u', 'f')"""
_PG_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename = ANY(%(tables)s)"""


def expected() -> dict[str, Any]:
    """{"head": revision, "tables": [...], "postgresql": Description, "sqlite": Description}"""
    return json.loads(EXPECTED_FILE.read_text())


def describe(conn, dialect: str, tables: list[str]) -> Description:
    """Our tables as the catalogue has them (missing tables are absent from the result)."""
    out: Description = {}
    if dialect == "postgresql":
        p = {"tables": tables}
        cur = conn.cursor()
        for table, comment in cur.execute(_PG_TABLES, p).fetchall():
            out[table] = {"comment": comment, "columns": {}, "constraints": {}, "indexes": {}}
        for table, column, type_, not_null, comment in cur.execute(_PG_COLUMNS, p).fetchall():
            out[table]["columns"][column] = [type_, not_null, comment]
        for table, name, kind, definition in cur.execute(_PG_CONSTRAINTS, p).fetchall():
            out[table]["constraints"][name] = [kind, definition]
        for table, name, definition in cur.execute(_PG_INDEXES, p).fetchall():
            out[table]["indexes"][name] = definition
        return out
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in tables:
        if table not in present:
            continue
        quoted = '"' + table.replace('"', '""') + '"'
        columns = {r[1]: [r[2], bool(r[3]), r[5]] for r in conn.execute(f"PRAGMA table_info({quoted})")}
        indexes = {}
        for _seq, name, unique, origin, _partial in conn.execute(f"PRAGMA index_list({quoted})"):
            cols = [r[2] for r in conn.execute(f"PRAGMA index_info(\"{name}\")")]
            indexes[name] = f"{'unique ' if unique else ''}{origin} ({', '.join(map(str, cols))})"
        fks = {f"fk{r[0]}.{r[1]}": ["f", f"{r[3]} -> {r[2]}.{r[4]}"]
               for r in conn.execute(f"PRAGMA foreign_key_list({quoted})")}
        out[table] = {"comment": None, "columns": columns, "constraints": fks, "indexes": indexes}
    return out


def matches(live: Description, want: Description) -> bool:
    """Equal where Alembic compares: every expected table, column, constraint and comment;
    indexes only those the migrations create (Timescale adds its own time indexes)."""
    if set(live) != set(want):
        return False
    for table, w in want.items():
        have = live[table]
        if (have["comment"], have["columns"], have["constraints"]) != (w["comment"], w["columns"], w["constraints"]):
            return False
        if {k: v for k, v in have["indexes"].items() if k in w["indexes"]} != w["indexes"]:
            return False
    return True


def _write(argv: list[str]) -> int:
    """Migrate a fresh SQLite file and, with --outputs, the (empty) PostgreSQL database of an
    environment, and store both descriptions as the expected catalogue."""
    import argparse
    import tempfile

    from ..contract import Sources, load_contract
    from . import ops
    from .schema import metadata

    parser = argparse.ArgumentParser(prog="python -m backbone.migrate.catalog")
    parser.add_argument("--write", action="store_true", required=True)
    parser.add_argument("--outputs", type=Path, required=True,
                        help="an environment whose database holds nothing yet (e.g. `local up --bare`)")
    args = parser.parse_args(argv)
    tables = sorted(metadata.tables)
    doc: dict[str, Any] = {"tables": tables}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_contract = load_contract(Sources(extras=(f"BACKBONE_BOOTSTRAP_STORE={tmp}/store.db",)))
        engine = ops.engine_for(sqlite_contract)
        doc["head"] = ops.upgrade_schema_only(engine)
        with sqlite3.connect(f"{tmp}/store.db") as conn:
            doc["sqlite"] = describe(conn, "sqlite", tables)
    pg_contract = load_contract(Sources(outputs=args.outputs))
    engine = ops.engine_for(pg_contract, duty="owner")  # it creates the schema
    ops.upgrade_schema_only(engine)
    with engine.connect() as conn:
        doc["postgresql"] = describe(conn.connection.driver_connection, "postgresql", tables)
    text = json.dumps(doc, indent=1, sort_keys=True)
    # one line per column / constraint: JSON strings hold no raw newline, so this is safe
    text = re.sub(r"\[[^\[\]{}]*\]", lambda m: re.sub(r"\n\s*", " ", m.group(0)).replace("[ ", "["), text)
    EXPECTED_FILE.write_text(text.replace(" ]", "]") + "\n")
    print(f"wrote {EXPECTED_FILE} (head {doc['head']})")
    return 0


if __name__ == "__main__":
    sys.exit(_write(sys.argv[1:]))
