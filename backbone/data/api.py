"""The data path for applications, the same on both tiers:

    from backbone.data import open_backbone
    with open_backbone(contract) as bb:
        result = bb.ingest("bars", rows, source="vendor.csv")      # journaled, idempotent
        bars = bb.bars(["AAPL"], start, end)                       # through the query cache
        print(bars.hit, bars.rows[0].close)

Institutional: TimescaleDB (one pool from the contract) and the Redis query cache.
Bootstrap: the embedded SQLite store and an in-process cache.

Every committed ingest writes its events (one per changed series, `backbone.data.outbox`) to
the outbox in the same transaction as its rows: a rolled-back ingest announces nothing, and a
committed one is announced even if the process dies before the relay publishes it.
"""
from __future__ import annotations

import datetime as dt
import functools
import threading
import time
import uuid
from itertools import islice
from operator import attrgetter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..contract import Contract
from ..errors import ConfigError, Interrupted, StoppedOnRequest
from .follow import bootstrap_fence, contract_for, institutional_fence
from .active_tier import ActiveTier, RecordReader, TierMoved, TierUnreachable
from . import reads
from .ahead import ahead
from .cache import LocalBackend, QueryCache, RedisBackend, cache_policy
from .files import FileFormatError
from .outbox import ingest_events
from .rows import FAST_CHECKS, Dimension, RowError, SeriesChanges, dimension, merge_changes, to_row
from .signals import SignalsHeld

BATCH = 100_000  # rows per COPY: bounded memory, few round trips
MAX_ERRORS = 10


@dataclass
class IngestResult:
    run_id: str
    dimension: str
    received: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    events: int = 0  # outbox events written with the rows (one per changed series)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_ERRORS bad rows
    freshness_s: float | None = None
    seconds: float = 0.0
    store_seconds: float = 0.0  # of `seconds`, the time spent in the store (writes and commit), not reading input
    status: str = "ok"  # ok | rejected (bad rows or an unreadable file) | interrupted | failed: the last three wrote nothing

    @property
    def unchanged(self) -> int:
        return self.received - self.rejected - self.inserted - self.updated


@dataclass
class QueryResult:
    rows: list
    hit: bool
    source: str
    ms: float

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class IngestRejected(ConfigError):
    """A file with bad rows, loaded all or nothing: nothing was written (bad input, exit 2; a
    ValueError too). `result` carries every bad row."""

    def __init__(self, result: IngestResult):
        first = "; ".join(str(e) for e in result.errors[:3])
        super().__init__(f"{result.rejected} bad row(s), nothing written: {first}")
        self.result = result


class Backbone:
    """Opened from either end's contract, it uses the tier the deployment's active-tier
    record names and follows a switch without a restart (backbone.data.follow): a write
    that meets the fence of a tier no longer active re-runs on the new one."""

    def __init__(self, contract: Contract, warn: Callable[[str], None] | None = None, timeout_s: float = 10.0):
        self.contract, self.warn, self.timeout_s = contract, warn, timeout_s
        self._record = RecordReader(contract.bootstrap.store, timeout_s) if contract.bootstrap else None
        self._lock = threading.RLock()
        self._open(self._record.read() if self._record else None)

    def _open(self, active: ActiveTier | None) -> None:
        contract = contract_for(self.contract, active)
        self.tier, self.epoch = contract.tier, active.epoch if active else 0
        if contract.tier == "institutional":
            from ..clients.redis import redis_client
            from .store_timescale import TimescaleStore
            self.store = TimescaleStore(contract, self.timeout_s)
            if self._record is not None:
                self.store.fence = institutional_fence(self._record)
            backend = RedisBackend(redis_client(contract.redis, 0.5)) if contract.redis else LocalBackend()
        else:
            from .store_sqlite import SqliteStore
            self.store = SqliteStore(contract.bootstrap.store, self.timeout_s)
            self.store.fence = bootstrap_fence
            backend = LocalBackend()
        self.cache = QueryCache(cache_policy(contract), backend, warn=self.warn)

    def follow(self, active: ActiveTier | None = None) -> bool:
        """Re-open on the active tier if a cut-over happened since; whether it did."""
        if self._record is None:
            return False
        with self._lock:
            active = active or self._record.read()
            if active is None or active.epoch == self.epoch:
                return False
            self._close_store()
            self._open(active)
            if self.tier == "institutional":
                self._reach(active)
            return True

    def _reach(self, active: ActiveTier) -> None:
        """A client that followed a switch says so clearly when it cannot reach the new tier."""
        try:
            with self.store.connection() as pg:
                pg.execute("SELECT 1")
        except Exception as exc:
            from ..report import Redactor
            self.epoch = -1  # the next call tries the new tier again
            reason = Redactor(contract_for(self.contract, active).secrets()).scrub(str(exc).split("\n")[0][:200])
            raise TierUnreachable(f"the deployment switched to the institutional tier (cut-over {active.epoch}), but "
                                  f"this client cannot reach its TimescaleDB: {type(exc).__name__}: {reason}") from None

    def close(self) -> None:
        self._close_store()
        if self._record is not None:
            self._record.close()

    def _close_store(self) -> None:
        try:
            if isinstance(self.cache.backend, LocalBackend):
                if hasattr(self.store, "add_cache_stats"):
                    self.store.add_cache_stats(self.cache.policy.namespace, self.cache.stats.to_dict())
            else:
                self.cache.flush_reads()
        except (*self.cache.backend.errors, TierMoved):
            pass  # the counters never fail a client
        finally:
            self.store.close()

    def ingested(self, checksum: str) -> bool:
        """Whether a file with this content (sha256 hex) was ingested before."""
        self.follow()
        return bool(self.store.query(f"SELECT 1 FROM ingested_files WHERE checksum = {reads.param(self.store, 'c')}",
                                     {"c": checksum}))

    def __enter__(self) -> "Backbone":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writes ------------------------------------------------------------------------

    def upsert(self, dim_name: str, rows: Iterable) -> IngestResult:
        """Validated, idempotent upsert (a bad row raises IngestRejected, nothing written)."""
        return self.ingest(dim_name, rows, source="upsert", journal=False)

    def ingest(self, dim_name: str, records: Iterable | Callable[[], Iterable], source: str,
               skip_invalid: bool = False, progress: Callable[[int], None] | None = None, journal: bool = True,
               numbered: bool = False, checksum: str | None = None) -> IngestResult:
        """Load records (rows or mappings; with `numbered`, (line, record) pairs) all or
        nothing: one transaction, bounded batches. With `skip_invalid`, valid rows load and
        bad ones are counted and reported. With `checksum` (the file's sha256), the file is
        recorded as ingested in the same transaction (see `ingested`). `records` may be a callable returning a fresh
        iterable: then a transaction that lost a deadlock is run again from the start (a
        list is re-read the same way), so no deadlock reaches the caller."""
        again = callable(records) or isinstance(records, (list, tuple))
        attempt = 0
        while True:
            try:
                return self._ingest(dim_name, records() if callable(records) else records, source, skip_invalid,
                                    progress, journal, numbered, checksum)
            except TierMoved as moved:  # refused at the fence, before a record was read: run it on the active tier
                self.follow(moved.active)
            except self.store.retryable:
                if not again or attempt == 4:
                    raise
                time.sleep(0.02 * 2 ** attempt)
                attempt += 1

    def _ingest(self, dim_name: str, records: Iterable, source: str, skip_invalid: bool,
                progress: Callable[[int], None] | None, journal: bool, numbered: bool,
                checksum: str | None) -> IngestResult:
        dim = dimension(dim_name)
        result = IngestResult(run_id=uuid.uuid4().hex, dimension=dim.name)
        started, started_at = time.perf_counter(), dt.datetime.now(dt.timezone.utc)
        series: set[str] = set()
        changes: SeriesChanges = {}
        newest: dt.datetime | None = None
        error: str | None = None
        held, committed = SignalsHeld(), False
        try:
            entered = time.perf_counter()
            with self.store.transaction() as tx:
                result.store_seconds += time.perf_counter() - entered
                for rows in self._batches(dim, records, numbered, result):
                    if result.rejected and not skip_invalid:
                        continue  # keep reading to report the first bad rows; nothing is written
                    newest = self._flush(tx, dim, rows, result, series, changes, newest)
                    if progress:
                        progress(result.received)
                if result.rejected and not skip_invalid:
                    raise IngestRejected(result)
                committing = time.perf_counter()
                events = ingest_events(result.run_id, dim.name, changes, source[:256])
                self.store.write_events(tx, events)
                if checksum:
                    self.store.record_file(tx, {"checksum": checksum, "dimension": dim.name, "name": source[:256],
                                                "run_id": result.run_id})
                result.events = len(events)
                # From the commit until the run is journaled, SIGINT / SIGTERM wait: a signal
                # landing between the two would journal a committed run as interrupted.
                held.hold()
            result.store_seconds += time.perf_counter() - committing
            committed = True
        except IngestRejected:
            result.status, result.inserted, result.updated, result.events = "rejected", 0, 0, 0
            error = f"{result.rejected} bad row(s); first: {result.errors[0]}"
            raise
        except FileFormatError as exc:  # the input refused as a whole (columns, gzip, JSON): not a pipeline failure
            result.status, result.inserted, result.updated, result.events, error = "rejected", 0, 0, 0, str(exc)
            raise
        except (KeyboardInterrupt, StoppedOnRequest) as exc:  # SIGINT, SIGTERM (`Interrupted`), serve's shutdown
            result.status, result.inserted, result.updated, result.events = "interrupted", 0, 0, 0
            error = (f"{exc if isinstance(exc, (Interrupted, StoppedOnRequest)) else 'interrupted by SIGINT'} after "
                     f"reading {result.received} row(s); rolled back, nothing written")
            exc.result = result  # for the caller's message (the exception ends the call)
            raise
        except TierMoved:
            journal = False  # nothing was written here; the run happens on the active tier
            raise
        except self.store.retryable:
            result.status, error, journal = "failed", "retried", False  # the retry journals the run
            raise
        except Exception as exc:
            result.status, error = "failed", type(exc).__name__
            raise
        finally:
            held.hold()  # a second Ctrl-C must not cut the journal entry short either
            try:
                result.seconds = time.perf_counter() - started
                if newest is not None and result.status == "ok":
                    result.freshness_s = (dt.datetime.now(dt.timezone.utc) - newest).total_seconds()
                if progress:
                    progress(result.received)
                if journal:
                    self._journal(result, source, sorted(series), started_at, error)
                if committed:
                    self.cache.invalidate([(dim.name, s) for s in changes])
            finally:
                held.release()  # a signal that waited is raised here, after the journal entry
        return result

    def _batches(self, dim: Dimension, records: Iterable, numbered: bool, result: IngestResult) -> Iterable:
        """Valid rows in bounded batches: lists of rows, or tables of validated columns from a
        `columnar.FileBatches` (a file read without a Python object per row)."""
        if hasattr(records, "dim"):
            def prepare(batch):  # on the read-ahead thread: the store's work that needs no connection
                batch.prepared = self.store.prepare(dim, batch.table) if batch.table.num_rows else None
                return batch
            for batch in ahead(records, prepare=prepare):  # the next batch is read while this one is written
                result.received, result.rejected = result.received + batch.received, result.rejected + len(batch.errors)
                result.errors.extend(batch.errors[:max(0, MAX_ERRORS - len(result.errors))])
                yield batch
            return
        source_iter, start = iter(records), 1
        while chunk := list(islice(source_iter, BATCH)):
            result.received += len(chunk)
            yield self._checked(dim, chunk, numbered, start, result)
            start += len(chunk)

    @staticmethod
    def _checked(dim: Dimension, chunk: list, numbered: bool, start: int, result: IngestResult) -> list:
        """The valid rows of a chunk (of records numbered from `start`, or of (position,
        record) pairs); typed rows that pass the quick check in place are taken as they are,
        the rest go through the full validation."""
        fast, kind = FAST_CHECKS[dim.name], dim.row
        if not numbered:
            rows = [r for r in chunk if type(r) is kind and fast(r)]
            if len(rows) == len(chunk):
                return rows
        rows = []
        for position, record in chunk if numbered else enumerate(chunk, start):
            try:
                rows.append(to_row(dim, record, position))
            except RowError as exc:
                result.rejected += 1
                if len(result.errors) < MAX_ERRORS:
                    result.errors.append(exc)
        return rows

    def _flush(self, tx, dim: Dimension, rows, result: IngestResult, series: set[str], changes: SeriesChanges,
               newest: dt.datetime | None) -> dt.datetime | None:
        """Write a batch (a list of rows, or a `columnar.Batch` of columns and what the store
        prepared of them); the newest ts so far."""
        table = not isinstance(rows, list)
        if table:
            rows, prepared = rows.table, rows.prepared
        if not (rows.num_rows if table else rows):
            return newest
        writing = time.perf_counter()  # duplicate keys: the last one wins
        changed = self.store.upsert_table(dim, rows, tx, prepared) if table else self.store.upsert(dim, rows, tx)
        result.store_seconds += time.perf_counter() - writing
        for inserted, updated, _, _ in changed.values():
            result.inserted += inserted
            result.updated += updated
        merge_changes(changes, changed)
        if table:
            from . import columnar
            series.update(columnar.series_of(dim, rows))
            last = columnar.newest(rows)
        else:
            series.update(map(attrgetter(dim.key[0]), rows))
            last = max(map(attrgetter("ts"), rows))
        return last if newest is None or last > newest else newest

    def _journal(self, result: IngestResult, source: str, series: list[str], started_at: dt.datetime,
                 error: str | None) -> None:
        try:
            self._write_journal(result, source, series, started_at, error)
        except TierMoved as moved:  # a cut-over between the ingest and its journal entry
            self.follow(moved.active)
            self._write_journal(result, source, series, started_at, error)

    def _write_journal(self, result: IngestResult, source: str, series: list[str], started_at: dt.datetime,
                       error: str | None) -> None:
        self.store.journal({
            "run_id": result.run_id, "dimension": result.dimension, "status": result.status,
            "rows": result.received, "rows_inserted": result.inserted, "rows_updated": result.updated,
            "rows_rejected": result.rejected, "freshness_seconds": result.freshness_s, "symbols": series,
            "metadata": {"unchanged": max(0, result.unchanged) if result.status == "ok" else 0},
            "source": source[:256], "started_at": started_at,
            "finished_at": dt.datetime.now(dt.timezone.utc), "error": error})

    # --- reads -------------------------------------------------------------------------

    def bars(self, symbols: list[str], start: dt.datetime, end: dt.datetime, limit: int = 100_000) -> QueryResult:
        return self._window("bars", symbols, start, end, limit)

    def trades(self, symbols: list[str], start: dt.datetime, end: dt.datetime, limit: int = 100_000) -> QueryResult:
        return self._window("trades", symbols, start, end, limit)

    def macro(self, calendars: list[str], start: dt.datetime, end: dt.datetime, limit: int = 100_000) -> QueryResult:
        return self._window("macro", calendars, start, end, limit)

    def latest_bars(self, symbols: list[str]) -> QueryResult:
        dim = dimension("bars")
        return self._cached("latest", dim, symbols, {},
                            lambda: reads.latest(self.store, dim, sorted(set(symbols))), _typed(dim))

    def candles(self, symbols: list[str], start: dt.datetime, end: dt.datetime, limit: int = 100_000) -> QueryResult:
        dim = dimension("trades")
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": limit}
        return self._cached("candles", dim, symbols, params,
                            lambda: reads.candles(self.store, sorted(set(symbols)), start, end, limit),
                            lambda row: reads.Candle(row[0], dt.datetime.fromisoformat(row[1]), *row[2:]))

    def _window(self, name: str, series: list[str], start: dt.datetime, end: dt.datetime, limit: int) -> QueryResult:
        dim = dimension(name)
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": limit}
        return self._cached("window", dim, series, params,
                            lambda: reads.window(self.store, dim, sorted(set(series)), start, end, limit), _typed(dim))

    def _cached(self, kind: str, dim: Dimension, series: list[str], params: dict, load, typed) -> QueryResult:
        started = time.perf_counter()
        if self._record is not None:  # (follow's own first test, without the call on every read)
            self.follow()
        key = {"dimension": dim.name, "series": sorted(set(series)), **params}
        found = self.cache.get_or_load(f"{dim.name}.{kind}", key, [(dim.name, s) for s in series], load,
                                       lambda rows: tuple(map(typed, rows)))  # typed rows are immutable: shareable
        return QueryResult(list(found.value), found.hit, found.source, (time.perf_counter() - started) * 1000)


@functools.cache  # one per dimension: a cache hit builds no converter
def _typed(dim: Dimension):
    ts_at = dim.columns.index("ts")

    def row(values: list):
        values = list(values)
        values[ts_at] = dt.datetime.fromisoformat(values[ts_at])
        return dim.row(*values)
    return row


def open_backbone(contract: Contract, warn: Callable[[str], None] | None = None) -> Backbone:
    return Backbone(contract, warn=warn)
