"""The institutional store: TimescaleDB through one SQLAlchemy pool (psycopg driver) sized
from the contract's pool settings.

An upsert is one transaction per batch:
- rows whose keys cannot exist yet go straight in with binary COPY (the physical floor):
  the batch's keys are unique (deduplicated before), and a range probe finds no stored row
  for its symbols and time span. The primary key is the proof: if a concurrent writer
  got there first, the COPY fails on it and the batch is redone the general way.
- otherwise: binary COPY into a session temp table, then one INSERT ... SELECT ... ON
  CONFLICT DO UPDATE (COPY cannot carry ON CONFLICT), in key order so that two writers of
  overlapping rows lock them in the same order; unchanged rows are not rewritten.
Deadlocks and serialization failures are `retryable`: the data API reruns the load.

Each upsert reports what changed per series (rows inserted, rows updated, their time span):
the data API turns that into outbox events, written in the same transaction (last, under a
lock per series bucket that keeps one series' events in commit order), and a NOTIFY on
`OUTBOX_CHANNEL` (delivered at commit) wakes the relay.
"""
from __future__ import annotations

import zlib
from contextlib import contextmanager
from operator import attrgetter
from typing import Callable, Iterator

import psycopg
from psycopg import errors, sql

from ..contract import Contract
from .rows import Dimension, SeriesChanges, series_changes

OUTBOX_CHANNEL = "backbone_outbox"
# the advisory locks (class, bucket) that keep one series' events in commit order
SERIES_LOCK_CLASS = 0x62626F78  # "bbox"
SERIES_BUCKETS = 64

PG_TYPES = {"symbol": "text", "ts": "timestamptz", "open": "float8", "high": "float8", "low": "float8",
            "close": "float8", "volume": "int8", "source": "text", "trade_id": "text", "price": "float8",
            "size": "float8", "side": "text", "calendar": "text", "event": "text", "currency": "text",
            "importance": "text", "actual": "float8", "forecast": "float8", "previous": "float8"}


def series_bucket(aggregateid: str) -> int:
    """Which of the SERIES_BUCKETS locks an event's series takes."""
    return zlib.crc32(aggregateid.encode()) % SERIES_BUCKETS


class TimescaleStore:
    dialect = "postgresql"
    retryable = (errors.DeadlockDetected, errors.SerializationFailure)

    def __init__(self, contract: Contract, timeout_s: float = 10.0):
        from ..clients import timescale as timescale_client
        # pooled as the contract's pool settings say
        self.engine = timescale_client.engine(contract.timescale, timeout_s)
        # called inside every write transaction, first: the data API takes the tier fence
        # there and checks that this tier is still the active one (backbone.data.active_tier)
        self.fence: Callable[[psycopg.Connection], None] | None = None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        raw = self.engine.raw_connection()
        try:
            yield raw.driver_connection
        except KeyboardInterrupt:  # Interrupted included: a signal may have cut a statement off
            raw.invalidate()  # mid-message (over TLS the stream is then unusable): closed, never reset
            raise
        finally:
            raw.close()  # back to the pool (rolled back if left open)

    # --- writes ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.connection() as pg, pg.transaction():
            if self.fence is not None:
                self.fence(pg)
            yield pg

    def upsert(self, dim: Dimension, rows: list, pg: psycopg.Connection) -> SeriesChanges:
        """What one batch of validated rows changed, per series, inside the caller's
        transaction (`transaction()`); the caller retries on `retryable`."""
        if not rows:
            return {}
        cols, changes = dim.columns, series_changes(dim, rows)
        if not self._probe(pg, dim, changes):
            try:
                with pg.transaction():  # a savepoint: a lost race, or a key twice in the batch, falls back below
                    self._copy(pg, sql.Identifier(dim.table), cols, map(attrgetter(*cols), rows))
                return changes
            except errors.UniqueViolation:
                pass
        rows = list(dict(zip(map(dim.key_of, rows), rows)).values())  # the last of duplicate keys wins
        stage = sql.Identifier(f"backbone_stage_{dim.table}")
        pg.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS")
                   .format(stage, sql.Identifier(dim.table)))
        pg.execute(sql.SQL("TRUNCATE {}").format(stage))
        self._copy(pg, stage, cols, map(attrgetter(*cols), rows))
        return {series: [inserted, updated, first, last]
                for series, inserted, updated, first, last in pg.execute(_merge_sql(dim, stage))}

    def prepare(self, dim: Dimension, table) -> tuple[SeriesChanges, list]:
        """What `upsert_table` needs of a batch of columns and can have made ahead, on the
        read-ahead thread: its changes per series and its binary COPY bytes (`pgcopy`)."""
        from . import columnar, pgcopy
        return columnar.table_changes(dim, table), list(pgcopy.parts(table))

    def upsert_table(self, dim: Dimension, table, pg: psycopg.Connection, prepared=None) -> SeriesChanges:
        """`upsert` of a batch of validated columns (a pyarrow table in `dim.columns` order,
        from `columnar`, and what `prepare` made of it): binary COPY made from the columns,
        no Python row."""
        from . import columnar, pgcopy
        if not table.num_rows:
            return {}
        cols = dim.columns
        changes, parts = prepared if prepared is not None else self.prepare(dim, table)
        if not self._probe(pg, dim, changes):
            try:
                with pg.transaction():  # a savepoint, as in `upsert`
                    self._copy_binary(pg, sql.Identifier(dim.table), cols, parts)
                return changes
            except errors.UniqueViolation:
                pass
        table = columnar.last_per_key(dim, table)
        stage = sql.Identifier(f"backbone_stage_{dim.table}")
        pg.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS")
                   .format(stage, sql.Identifier(dim.table)))
        pg.execute(sql.SQL("TRUNCATE {}").format(stage))
        self._copy_binary(pg, stage, cols, pgcopy.parts(table))
        return {series: [inserted, updated, first, last]
                for series, inserted, updated, first, last in pg.execute(_merge_sql(dim, stage))}

    @staticmethod
    def _copy_binary(pg: psycopg.Connection, table: sql.Composable, cols: tuple[str, ...], parts) -> None:
        """Binary COPY of buffers `pgcopy` made from columns (nothing for the server to
        parse back from text)."""
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            table, sql.SQL(", ").join(map(sql.Identifier, cols)))
        with pg.cursor().copy(statement) as copy:
            for part in parts:
                copy.write(part)

    @staticmethod
    def _probe(pg: psycopg.Connection, dim: Dimension, changes: SeriesChanges) -> bool:
        """Whether a stored row lies in the span of one of the batch's series (`changes`: per
        series, [count, 0, first ts, last ts]). Each series' own span, not the batch's: a file
        in time order hands over batches that meet on one timestamp, and a shared span made
        every batch after the first look like an update (the staging table and the merge, at
        a third of the speed)."""
        first = dim.key[0]
        # one primary-key probe per series and chunk (a plain `= ANY(...)` lets the planner
        # scan the whole time index of a large table instead); the batch's whole span as
        # constants too, so that the chunks outside it are excluded when planning (not
        # prepared: each probe is planned with its own values)
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) "
                        "s(v, lo, hi) CROSS JOIN LATERAL (SELECT 1 FROM {} t WHERE t.{} = s.v AND t.ts >= s.lo "
                        "AND t.ts <= s.hi AND t.ts >= %s AND t.ts <= %s LIMIT 1) x)").format(
            sql.Identifier(dim.table), sql.Identifier(first))
        series = sorted(changes)
        lo, hi = [changes[k][2] for k in series], [changes[k][3] for k in series]
        return pg.execute(query, (series, lo, hi, min(lo), max(hi)), prepare=False).fetchone()[0]

    @staticmethod
    def _copy(pg: psycopg.Connection, table: sql.Composable, cols: tuple[str, ...], values) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            table, sql.SQL(", ").join(map(sql.Identifier, cols)))
        with pg.cursor().copy(statement) as copy:
            copy.set_types([PG_TYPES[c] for c in cols])
            for row in values:
                copy.write_row(row)

    @staticmethod
    def write_events(pg: psycopg.Connection, events: list[dict]) -> None:
        """Outbox rows (id, aggregatetype, aggregateid, type, payload), inside the ingest's
        transaction; the relay is woken when it commits."""
        if not events:
            return
        # per series, seq order is commit order: of two ingests with events for one series the
        # second waits here until the first has committed, then draws the higher seqs (the
        # relay publishes in seq order). Buckets bound the locks a transaction takes; taken in
        # order, so these locks alone never deadlock (a deadlock with row locks is retried).
        buckets = sorted({series_bucket(e["aggregateid"]) for e in events})
        pg.execute("SELECT pg_advisory_xact_lock(%s::int, b) FROM unnest(%s::int[]) b",
                   (SERIES_LOCK_CLASS, buckets))
        pg.execute("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) "
                   "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[])",
                   [[e[c] for e in events] for c in ("id", "aggregatetype", "aggregateid", "type")]
                   + [[psycopg.types.json.Jsonb(e["payload"]) for e in events]])
        pg.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(OUTBOX_CHANNEL)))

    def record_file(self, pg: psycopg.Connection, record: dict) -> None:
        """A drop-directory file as ingested, by checksum, inside the ingest's transaction."""
        pg.execute("INSERT INTO ingested_files (checksum, dimension, name, run_id, ingested_at) "
                   "VALUES (%(checksum)s, %(dimension)s, %(name)s, %(run_id)s, now())", record)

    def journal(self, record: dict) -> None:
        cols = list(record)
        statement = sql.SQL("INSERT INTO ingest_runs ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join(sql.Placeholder() * len(cols)))
        with self.transaction() as pg:
            pg.execute(statement, [psycopg.types.json.Jsonb(v) if isinstance(v, (list, dict)) else v
                                   for v in record.values()])

    # --- reads -------------------------------------------------------------------------

    def query(self, statement: str, params: dict) -> list[tuple]:
        with self.connection() as pg:
            rows = pg.execute(statement, params).fetchall()
            pg.rollback()
            return rows


def _merge_sql(dim: Dimension, stage: sql.Identifier) -> sql.Composed:
    cols = dim.columns
    changing = [c for c in cols if c not in dim.key]
    ident = lambda names: sql.SQL(", ").join(map(sql.Identifier, names))  # noqa: E731
    return sql.SQL(
        "WITH up AS (INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {stage} ORDER BY {key} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new}) "
        "RETURNING t.{series} AS series, t.ts, (xmax = 0) AS inserted) "
        "SELECT series, count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), min(ts), max(ts) "
        "FROM up GROUP BY series").format(
        series=sql.Identifier(dim.key[0]),
        table=sql.Identifier(dim.table), cols=ident(cols), stage=stage, key=ident(dim.key),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in changing),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in changing),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in changing))
