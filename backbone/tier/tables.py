"""What a tier switch moves: the tables, their columns and kinds, keys and time columns,
read from the schema (`backbone.migrate.schema`), so a migration that adds a column moves it.

Moved: the market data, the ingest journal, the drop-directory record and the event log
(`outbox`, whose rows get new `seq` values on the target and are matched by event `id`).
Not moved: consumer positions (offsets into the bootstrap log mean nothing to Kafka),
cache counters (Redis keeps its own), and the tier tables themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, BigInteger, DateTime, Double, Integer

from ..migrate import schema

MOVED = ("daily_bars", "intraday_trades", "macro_events", "ingest_runs", "ingested_files", "outbox")
TIME_COLUMN = {"daily_bars": "ts", "intraday_trades": "ts", "macro_events": "ts", "ingest_runs": "started_at",
               "ingested_files": "ingested_at", "outbox": "created_at"}


@dataclass(frozen=True)
class MovedTable:
    name: str
    columns: tuple[str, ...]       # in schema order; the outbox's `seq` left out
    kinds: tuple[str, ...]         # per column: ts | float | int | json | text
    key: tuple[str, ...]           # what identifies a row on both sides
    time: str                      # the column verification chunks by
    nullable: tuple[bool, ...]

    def kind(self, column: str) -> str:
        return self.kinds[self.columns.index(column)]

    @property
    def key_at(self) -> tuple[int, ...]:
        return tuple(self.columns.index(k) for k in self.key)


def _kind(sa_type) -> str:
    if isinstance(sa_type, DateTime):
        return "ts"
    if isinstance(sa_type, Double):
        return "float"
    if isinstance(sa_type, (Integer, BigInteger)):
        return "int"
    if isinstance(sa_type, JSON):
        return "json"
    return "text"


def _moved(name: str) -> MovedTable:
    table = schema.metadata.tables[name]
    columns = [c for c in table.columns if not (name == "outbox" and c.name == "seq")]
    key = ("id",) if name == "outbox" else tuple(c.name for c in table.primary_key.columns)
    return MovedTable(name, tuple(c.name for c in columns), tuple(_kind(c.type) for c in columns), key,
                      TIME_COLUMN[name], tuple(bool(c.nullable) for c in columns))


TABLES: dict[str, MovedTable] = {name: _moved(name) for name in MOVED}
