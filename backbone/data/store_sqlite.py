"""The bootstrap store: the embedded SQLite file, in WAL mode, one transaction per batch.

Timestamps are stored as UTC text `YYYY-MM-DD HH:MM:SS.ffffff` (what SQLAlchemy writes for
this schema, and ordered as text). A batch of columns whose series' spans hold no stored row
goes straight into the table. Otherwise an upsert stages the batch in a temp table, counts per
series the keys that are new and the stored rows that will change (one writer at a time, so
the counts hold), and merges with INSERT ... ON CONFLICT DO UPDATE that leaves unchanged rows
alone. The outbox here is the bootstrap tier's event log.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterator

from .rows import Dimension, SeriesChanges

def to_text(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def from_text(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)


class SqliteStore:
    dialect = "sqlite"
    retryable: tuple[type[BaseException], ...] = ()  # one writer at a time: nothing to retry

    def __init__(self, path: str | Path, timeout_s: float = 10.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection, used under a lock: SQLite serialises writers anyway
        self.conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache (the default is 2 MiB): a batch of a file in time order inserts
        # at one place per series in the primary key's B-tree; with too few pages cached,
        # every batch spilled and re-read them
        self.conn.execute("PRAGMA cache_size=-65536")
        self.lock = threading.RLock()
        # called inside every write transaction, right after the write lock is taken: the
        # data API checks there that this tier is still the active one (backbone.data.active_tier)
        self.fence: Callable[[sqlite3.Connection], None] | None = None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                if self.fence is not None:
                    self.fence(self.conn)
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def upsert(self, dim: Dimension, rows: list, conn: sqlite3.Connection) -> SeriesChanges:
        """What one batch changed, per series, inside the caller's `transaction()`."""
        if not rows:
            return {}
        cols = dim.columns
        ts_at = cols.index("ts")
        rows = list(dict(zip(map(dim.key_of, rows), rows)).values())  # the last of duplicate keys wins
        values = [tuple(to_text(v) if i == ts_at else v for i, v in enumerate(row))
                  for row in map(attrgetter(*cols), rows)]
        return self._merge(dim, values, conn)

    def prepare(self, dim: Dimension, table) -> tuple[SeriesChanges, list[tuple]]:
        """What `upsert_table` needs of a batch of columns and can have made ahead, on the
        read-ahead thread: the batch made key-unique (the last row of a key wins), its
        changes per series, and its value tuples (ts as the store's text)."""
        import pyarrow.compute as pc
        from . import columnar
        table = columnar.last_per_key(dim, table)
        values = list(zip(*[pc.strftime(table[c], "%Y-%m-%d %H:%M:%S").to_pylist() if c == "ts"
                            else table[c].to_pylist() for c in dim.columns]))
        return columnar.table_changes(dim, table), values

    def upsert_table(self, dim: Dimension, table, conn: sqlite3.Connection, prepared=None) -> SeriesChanges:
        """`upsert` of a batch of validated columns (a pyarrow table in `dim.columns` order,
        from `columnar`, and what `prepare` made of it): executemany straight from the
        columns, no row object. Where no stored row lies in any of the batch's series' spans
        (a new file, or the next batch of one in time order), the batch goes straight into
        the table: the write lock is held since the probe and its keys are unique, so none
        can conflict (no savepoint either, whose journal would copy every page it touches)."""
        if not table.num_rows:
            return {}
        changes, values = prepared if prepared is not None else self.prepare(dim, table)
        if self._probe(dim, changes, conn):
            return self._merge(dim, values, conn)
        conn.executemany(f"INSERT INTO {dim.table} ({', '.join(dim.columns)}) "
                         f"VALUES ({', '.join('?' * len(dim.columns))})", values)
        return changes

    @staticmethod
    def _probe(dim: Dimension, changes: SeriesChanges, conn: sqlite3.Connection) -> bool:
        """Whether a stored row lies in one of the batch's series' own spans (`changes`)."""
        spans = json.dumps([[series, to_text(lo), to_text(hi)] for series, (_, _, lo, hi) in changes.items()])
        first = dim.key[0]
        return bool(conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM json_each(?) j JOIN {dim.table} t ON t.{first} = j.value ->> 0 "
            "AND t.ts >= j.value ->> 1 AND t.ts <= j.value ->> 2)", (spans,)).fetchone()[0])

    def _merge(self, dim: Dimension, values, conn: sqlite3.Connection) -> SeriesChanges:
        """Stage the batch's value tuples (keys unique, ts as text), count, merge."""
        cols = dim.columns
        stage = f"backbone_stage_{dim.table}"
        col_list = ", ".join(cols)
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {col_list} FROM {dim.table} WHERE 0")
        conn.execute(f"DELETE FROM {stage}")
        conn.executemany(f"INSERT INTO {stage} ({col_list}) VALUES ({', '.join('?' * len(cols))})", values)
        key, first = ", ".join(dim.key), dim.key[0]
        changing = [c for c in cols if c not in dim.key]
        changed = " OR ".join(f"t.{c} IS NOT s.{c}" for c in changing)
        changes = {series: [inserted, updated, from_text(lo), from_text(hi)]
                   for series, inserted, updated, lo, hi in conn.execute(
                       f"SELECT s.{first}, sum(t.{first} IS NULL), sum(t.{first} IS NOT NULL), min(s.ts), max(s.ts) "
                       f"FROM {stage} s LEFT JOIN {dim.table} t USING ({key}) "
                       f"WHERE t.{first} IS NULL OR {changed} GROUP BY s.{first}")}
        conn.execute(f"INSERT INTO {dim.table} ({col_list}) SELECT {col_list} FROM {stage} WHERE true "
                     f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in changing)} "
                     f"WHERE {' OR '.join(f'{dim.table}.{c} IS NOT excluded.{c}' for c in changing)}")
        return changes

    def write_events(self, conn: sqlite3.Connection, events: list[dict]) -> None:
        """Append to the event log, inside the ingest's transaction: each event's `seq` is its
        offset (one writer at a time, so offsets follow commit order)."""
        now = to_text(dt.datetime.now(dt.timezone.utc))
        conn.executemany("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         [(e["id"], e["aggregatetype"], e["aggregateid"], e["type"],
                           json.dumps(e["payload"], separators=(",", ":")), now) for e in events])

    def record_file(self, conn: sqlite3.Connection, record: dict) -> None:
        conn.execute("INSERT INTO ingested_files (checksum, dimension, name, run_id, ingested_at) "
                     "VALUES (:checksum, :dimension, :name, :run_id, :at)",
                     {**record, "at": to_text(dt.datetime.now(dt.timezone.utc))})

    def add_cache_stats(self, namespace: str, stats: dict[str, int]) -> None:
        """Add an in-process cache's counters to the store's totals (see `validate`)."""
        counts = {k: int(stats.get(k, 0)) for k in ("hits", "misses", "sets", "evictions")}
        if not any(counts.values()):
            return
        try:
            self._add_cache_stats(namespace, counts)
        except sqlite3.OperationalError:  # a store not migrated to 0003 yet: nothing to keep them in
            pass

    def _add_cache_stats(self, namespace: str, counts: dict[str, int]) -> None:
        with self.transaction() as tx:
            tx.execute("INSERT INTO cache_stats (namespace, hits, misses, sets, evictions, updated_at) "
                       "VALUES (:ns, :hits, :misses, :sets, :evictions, :at) ON CONFLICT (namespace) DO UPDATE SET "
                       "hits = hits + excluded.hits, misses = misses + excluded.misses, sets = sets + excluded.sets, "
                       "evictions = evictions + excluded.evictions, updated_at = excluded.updated_at",
                       {"ns": namespace, **counts, "at": to_text(dt.datetime.now(dt.timezone.utc))})

    def journal(self, record: dict) -> None:
        cols = list(record)
        values = [json.dumps(v) if isinstance(v, (list, dict)) else to_text(v) if isinstance(v, dt.datetime) else v
                  for v in record.values()]
        with self.transaction() as tx:
            tx.execute(f"INSERT INTO ingest_runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)

    def query(self, statement: str, params: dict) -> list[tuple]:
        with self.lock:
            return self.conn.execute(statement, {k: _param(v) for k, v in params.items()}).fetchall()


def _param(value: Any) -> Any:
    return to_text(value) if isinstance(value, dt.datetime) else value
