"""Verify a tier switch's copy: both tiers hold the same rows, before the cut-over.

Per moved table and time chunk (a bucket of its time column, as wide as the hypertable's
TimescaleDB chunks, else a day; rows without a usable time are a chunk of their own): the row
count and the exact sum of the rows' `canonical` digests, computed alike on both sides.
TimescaleDB sums in SQL on its own core while Python hashes the bootstrap store (tables with
json columns: Python on both sides). Each chunk that differs, or that one side lacks, is
drilled into: every differing key is listed, `missing` (bootstrap store only), `extra`
(TimescaleDB only), `different` or `duplicate`. Each side is read in one snapshot (unless the
caller's PostgreSQL transaction is open); a table that could not be compared is never equal.

Memory does not grow with the store or with the number of mismatches: sums are per chunk,
mismatched chunks are drilled into a group of at most GROUP_ROWS rows at a time, a verdict
keeps the first LISTED mismatches (and counts them all), and `listing` (a file) receives
every one of them as a JSON line.
"""
from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psycopg
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus

from . import canonical as C
from .tables import MOVED, TABLES, MovedTable

DAY_US = 86_400_000_000
BATCH = 10_000
GROUP_ROWS = 200_000  # rows of mismatched chunks held as key -> digest at once, both sides
LISTED = 1_000  # mismatches a verdict keeps in memory and in reports; `listing` has them all
LEFT_OUT = {"outbox": ("published_at",)}  # the relay sets it on the target
Progress = Callable[[str, int], None]  # (table, source rows read so far in it)


@dataclass(slots=True)
class Mismatch:
    key: tuple  # the key columns: text as stored, timestamps ISO 8601 UTC
    kind: str  # missing | extra | different | duplicate
    chunk: str  # where its chunk starts (ISO 8601), or "no time"


@dataclass
class TableVerdict:
    table: str
    rows_source: int = 0
    rows_target: int = 0
    chunks: int = 0
    chunk_seconds: float = 0.0
    mismatched_chunks: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)  # the first LISTED
    mismatch_count: int = 0  # all of them
    error: str | None = None

    @property
    def equal(self) -> bool:
        return (self.error is None and not self.mismatched_chunks and not self.mismatch_count
                and self.rows_source == self.rows_target)


@dataclass
class Verification:
    tables: list[TableVerdict]
    seconds: float
    rows_per_s: float

    @property
    def equal(self) -> bool:
        return bool(self.tables) and all(t.equal for t in self.tables)

    def to_dict(self) -> dict:
        return {"equal": self.equal, "seconds": round(self.seconds, 3), "rows_per_s": round(self.rows_per_s),
                "tables": [{"equal": t.equal, **asdict(t)} for t in self.tables]}


@dataclass(frozen=True)
class _Plan:
    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    key_at: tuple[int, ...]
    time_at: int
    width: int  # microseconds

    @classmethod
    def of(cls, t: MovedTable, width: int) -> "_Plan":
        cols = tuple(c for c in t.columns if c not in LEFT_OUT.get(t.name, ()))
        return cls(t.name, cols, tuple(t.kind(c) for c in cols), tuple(cols.index(k) for k in t.key),
                   cols.index(t.time), width)

    def q(self, i: int) -> str:
        return f'"{self.columns[i]}"'

    def select(self) -> str:
        return f'SELECT {", ".join(map(self.q, range(len(self.columns))))} FROM "{self.name}"'

    def chunk(self, bucket: int | None) -> str:
        return "no time" if bucket is None else C.render(str(bucket * self.width), "ts")

    def key(self, parts: tuple) -> tuple:
        return tuple(C.render(p, self.kinds[i]) for p, i in zip(parts, self.key_at))


def verify(source: sqlite3.Connection | str | Path, target: psycopg.Connection, tables=None,
           progress: Progress | None = None, listing: Path | None = None) -> Verification:
    """Compare the bootstrap store (a connection, or the store's path) with TimescaleDB,
    for `tables` (default: every moved table); every mismatch goes to the file `listing`
    (JSON lines, see `listed`), replaced on each run."""
    started = time.perf_counter()
    names = list(MOVED if tables is None else tables)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        raise ValueError(f"not moved by a tier switch: {', '.join(unknown)}")
    conn = source if isinstance(source, sqlite3.Connection) else _open(source)
    try:
        with _sqlite_snapshot(conn), _pg_snapshot(target), _Sink(listing) as sink:
            plans = [_Plan.of(TABLES[n], w) for n, w in zip(names, _widths(target, names))]
            verdicts = _compare(conn, target, plans, progress, sink)
    finally:
        if conn is not source:
            conn.close()
    seconds = time.perf_counter() - started
    return Verification(verdicts, seconds, sum(v.rows_source for v in verdicts) / max(seconds, 1e-9))


def _compare(conn, target, plans: list[_Plan], progress, sink: "_Sink") -> list[TableVerdict]:
    with ThreadPoolExecutor(1, thread_name_prefix="verify-target") as pool:  # the server sums meanwhile
        futures = [pool.submit(_target_sums, target, p) for p in plans]
        sources = [_failing("bootstrap store", _source_sums, conn, p, progress) for p in plans]
        targets = [_failing("timescaledb", f.result) for f in futures]
    verdicts = []
    for plan, src, tgt in zip(plans, sources, targets):
        verdict = TableVerdict(plan.name, chunk_seconds=plan.width / 1e6)
        verdicts.append(verdict)
        if isinstance(src, str) or isinstance(tgt, str):
            verdict.error = "; ".join(e for e in (src, tgt) if isinstance(e, str))
            continue
        verdict.rows_source = sum(n for n, _ in src.values())
        verdict.rows_target = sum(n for n, _ in tgt.values())
        verdict.chunks = len(src.keys() | tgt.keys())
        bad = sorted(src.keys() ^ tgt.keys() | {b for b in src.keys() & tgt.keys() if src[b] != tgt[b]},
                     key=lambda b: (b is None, b or 0))  # in time order, then the rows without
        verdict.mismatched_chunks = [plan.chunk(b) for b in bad]
        rows = {b: src.get(b, (0, 0))[0] + tgt.get(b, (0, 0))[0] for b in bad}
        for group in _groups(bad, rows):
            failed = _failing("listing the mismatched keys", _drill, conn, target, plan, group,
                              lambda m, verdict=verdict: sink.add(verdict, m))
            if failed is not None:
                verdict.error = failed
                break
    return verdicts


def _groups(bad: list, rows: dict) -> Iterator[list]:
    """The mismatched chunks in time order, a group of at most GROUP_ROWS rows (or one chunk) at a time."""
    group, held = [], 0
    for bucket in bad:
        if group and held + rows[bucket] > GROUP_ROWS:
            yield group
            group, held = [], 0
        group.append(bucket)
        held += rows[bucket]
    if group:
        yield group


class _Sink:
    """Where mismatches go: the verdict keeps the first LISTED and counts all; the listing
    file, when there is one, gets every one as a JSON line."""

    def __init__(self, path: Path | None):
        self.path, self.file = path, None

    def __enter__(self) -> "_Sink":
        if self.path is not None:
            self.file = open(self.path, "w", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()

    def add(self, verdict: TableVerdict, m: Mismatch) -> None:
        verdict.mismatch_count += 1
        if len(verdict.mismatches) < LISTED:
            verdict.mismatches.append(m)
        if self.file is not None:
            self.file.write(json.dumps({"table": verdict.table, **asdict(m)}, ensure_ascii=False) + "\n")


def listed(path: Path) -> Iterator[tuple[str, Mismatch]]:
    """(table, mismatch) of every line a verification wrote to its listing, streamed."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            yield d["table"], Mismatch(tuple(d["key"]), d["kind"], d["chunk"])


def _failing(where: str, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported: the table is not equal
        return f"{where}: {type(exc).__name__}: {exc}"


def _drill(conn, target, plan: _Plan, bad: list, add: Callable[[Mismatch], None]) -> None:
    """Every differing key of the mismatched chunks `bad`, from key -> digest on both sides."""
    src = _by_bucket(_source_rows(conn, plan, bad), add, plan)
    with target.transaction():
        tgt = _by_bucket(_target_rows(target, plan, *C.pg_where_buckets(plan.q(plan.time_at), plan.width, bad)),
                         add, plan)
    for bucket in bad:  # each chunk's keys freed once listed
        s, t, chunk = src.pop(bucket, {}), tgt.pop(bucket, {}), plan.chunk(bucket)
        for key in sorted(s.keys() | t.keys()):
            kind = "extra" if key not in s else "missing" if key not in t else "different" if s[key] != t[key] else None
            if kind:
                add(Mismatch(plan.key(key), kind, chunk))


def _by_bucket(rows, add: Callable[[Mismatch], None], plan: _Plan) -> dict:
    found: dict = {}
    for bucket, key, d in rows:
        keys = found.setdefault(bucket, {})
        if key in keys:
            add(Mismatch(plan.key(key), "duplicate", plan.chunk(bucket)))
        keys[key] = d
    return found


# --- the bootstrap store ------------------------------------------------------------------

def _open(path) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


@contextmanager
def _sqlite_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    if conn.in_transaction:  # the caller's
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


def _source_sums(conn, plan: _Plan, progress) -> dict:
    fast = None if "json" in plan.kinds else C.batch_digester(plan.kinds, plan.time_at, plan.width)
    sums: dict = {}
    done = 0
    cur = conn.execute(plan.select())
    while rows := cur.fetchmany(BATCH):
        batch = fast(rows) if fast else _sums((C.bucket_of(row[plan.time_at], plan.width),
                                               C.digest("|".join(C.row_parts(row, plan.kinds)))) for row in rows)
        for bucket, (n, s) in batch.items():
            have = sums.get(bucket)
            sums[bucket] = (n, s) if have is None else (have[0] + n, have[1] + s)
        done += len(rows)
        if progress:
            progress(plan.name, done)
    return sums


def _sums(pairs) -> dict:
    """{bucket: (rows, checksum)} of (bucket, digest) pairs."""
    sums: dict = {}
    for bucket, d in pairs:
        n, s = sums.get(bucket, (0, 0))
        sums[bucket] = (n + 1, s + d)
    return sums


def _source_rows(conn, plan: _Plan, bad: list):
    """(bucket, key parts, digest) of the rows of the chunks `bad`: SQLite narrows by date
    text (no index on the time column alone: one scan for all chunks), Python exactly."""
    wanted = set(bad)
    where, params = C.sqlite_where_buckets(plan.q(plan.time_at), plan.width, bad)
    cur = conn.execute(f"{plan.select()} WHERE {where}", params)
    while rows := cur.fetchmany(BATCH):
        for row in rows:
            bucket = C.bucket_of(row[plan.time_at], plan.width)
            if bucket in wanted:
                parts = C.row_parts(row, plan.kinds)
                yield bucket, tuple(parts[i] for i in plan.key_at), C.digest("|".join(parts))


# --- TimescaleDB --------------------------------------------------------------------------

@contextmanager
def _pg_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    if conn.info.transaction_status != TransactionStatus.IDLE:  # the caller's transaction
        yield
        return
    saved = conn.isolation_level, conn.read_only
    conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
    try:
        with conn.transaction():
            # parallel workers would take the core hashing the bootstrap store; the server finishes first anyway
            conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            yield
    finally:
        conn.isolation_level, conn.read_only = saved


def _widths(conn, names: list[str]) -> list[int]:
    """The hypertables' chunk intervals; a day for plain tables (and without TimescaleDB)."""
    encoding = conn.execute("SHOW server_encoding").fetchone()[0]
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise ValueError(f"TimescaleDB's encoding is {encoding}: the checksums need UTF8")
    width = dict.fromkeys(names, DAY_US)
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        for name, us in conn.execute(
                "SELECT hypertable_name, (extract(epoch FROM time_interval) * 1000000)::bigint "
                "FROM timescaledb_information.dimensions WHERE hypertable_schema = current_schema() "
                "AND hypertable_name = ANY(%s) AND time_interval IS NOT NULL", (names,)):
            width[name] = us if us and us > 0 else DAY_US
    return [width[n] for n in names]


def _canonical_sql(plan: _Plan) -> str:
    return " || '|' || ".join(C.pg_canonical(plan.q(i), k) for i, k in enumerate(plan.kinds))


def _target_sums(conn, plan: _Plan) -> dict:
    with conn.transaction():  # a savepoint: one table's failure leaves the others readable
        if "json" in plan.kinds:
            return _sums((bucket, d) for bucket, _, d in _target_rows(conn, plan, "TRUE", []))
        return {bucket: (n, int(s)) for bucket, n, s in conn.execute(
            f"SELECT b, count(*), sum(d) FROM (SELECT {C.pg_bucket(plan.q(plan.time_at), plan.width)} AS b, "
            f'{C.pg_digest(_canonical_sql(plan))} AS d FROM "{plan.name}") s GROUP BY b')}


def _target_rows(conn, plan: _Plan, where: str, params: list):
    """(bucket, key parts, digest) of the rows `where` selects, streamed; json columns'
    text is canonicalised here, everything else in SQL."""
    json = "json" in plan.kinds
    exprs = [C.pg_canonical(plan.q(i), plan.kinds[i]) for i in (range(len(plan.kinds)) if json else plan.key_at)]
    if not json:
        exprs.append(C.pg_digest(_canonical_sql(plan)))
    with conn.cursor(name=f"verify_{plan.name}") as cur:
        cur.itersize = BATCH
        cur.execute(f'SELECT {C.pg_bucket(plan.q(plan.time_at), plan.width)}, {", ".join(exprs)} '
                    f'FROM "{plan.name}" WHERE {where}', params)
        for bucket, *parts in cur:
            if not json:
                yield bucket, tuple(parts[:-1]), parts[-1]
                continue
            parts = [C.json_text(p) if k == "json" else p for p, k in zip(parts, plan.kinds)]
            yield bucket, tuple(parts[i] for i in plan.key_at), C.digest("|".join(parts))
