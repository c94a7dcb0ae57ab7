"""Verify a tier switch's copy: both tiers hold the same rows, before the cut-over.

Per moved table and per time chunk (a bucket of the table's time column, as wide as the
hypertable's TimescaleDB chunk interval, else a day; rows without a usable time form a chunk of
their own): the row count and a checksum, the exact sum of the row digests of
`canonical` (order independent), computed the same way on both sides. TimescaleDB works out
its sums in SQL on its own core while Python hashes the bootstrap store; tables with json
columns are canonicalised in Python on both sides (jsonb's text is not what SQLite holds).
Each chunk whose count or checksum differs, or that exists on one side only, is drilled into:
every key that differs is listed, `missing` (in the bootstrap store only), `extra`
(TimescaleDB only), `different` (both, other content) or `duplicate`.

Both sides are read in one snapshot (a read transaction in SQLite, REPEATABLE READ READ ONLY in
PostgreSQL when the connection is in autocommit). Nothing compared, nothing equal: a table that
could not be read carries its error and is never equal.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psycopg

from . import canonical as C
from .tables import MOVED, TABLES, MovedTable

DAY_US = 86_400_000_000
BATCH = 10_000
LEFT_OUT = {"outbox": ("published_at",)}  # the relay sets it on the target
Progress = Callable[[str, int], None]


@dataclass
class Mismatch:
    key: tuple
    kind: str  # missing | extra | different | duplicate
    chunk: str


@dataclass
class TableVerdict:
    table: str
    rows_source: int = 0
    rows_target: int = 0
    chunks: int = 0
    chunk_seconds: float = 0.0
    mismatched_chunks: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None

    @property
    def equal(self) -> bool:
        return (self.error is None and not self.mismatched_chunks and not self.mismatches
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

    @property
    def json(self) -> bool:
        return "json" in self.kinds

    def quoted(self, i: int) -> str:
        return f'"{self.columns[i]}"'

    def select(self) -> str:
        return f'SELECT {", ".join(map(self.quoted, range(len(self.columns))))} FROM "{self.name}"'

    def chunk(self, bucket: int | None) -> str:
        if bucket is None:
            return "no time"
        try:
            return (C.EPOCH_UTC + dt.timedelta(microseconds=bucket * self.width)).isoformat()
        except OverflowError:
            return f"bucket {bucket}"

    def key(self, parts: tuple) -> tuple:
        return tuple(_render(p, self.kinds[i]) for p, i in zip(parts, self.key_at))


def _render(part: str, kind: str):
    if part == C.NULL:
        return None
    if part.startswith("\\?"):
        return part
    if kind == "ts":
        try:
            return (C.EPOCH_UTC + dt.timedelta(microseconds=int(part))).isoformat()
        except OverflowError:
            return part
    return int(part) if kind == "int" else C.unescape(part) if kind == "text" else part


def verify(source: sqlite3.Connection | str | Path, target: psycopg.Connection, tables=None,
           progress: Progress | None = None) -> Verification:
    """Compare the bootstrap store (a connection or the store's path) with TimescaleDB."""
    started = time.perf_counter()
    names = list(MOVED if tables is None else tables)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        raise ValueError(f"not moved by a tier switch: {', '.join(unknown)}")
    conn = source if isinstance(source, sqlite3.Connection) else _open(source)
    try:
        with _sqlite_snapshot(conn), _pg_snapshot(target):
            plans = [_Plan.of(TABLES[n], w) for n, w in zip(names, _widths(target, names))]
            verdicts = _compare(conn, target, plans, progress)
    finally:
        if conn is not source:
            conn.close()
    seconds = time.perf_counter() - started
    return Verification(verdicts, seconds, sum(v.rows_source for v in verdicts) / max(seconds, 1e-9))


def _compare(conn, target, plans: list[_Plan], progress) -> list[TableVerdict]:
    verdicts = []
    with ThreadPoolExecutor(1, thread_name_prefix="verify-target") as pool:  # the server hashes meanwhile
        futures = [pool.submit(_target_sums, target, p) for p in plans]
        sources = []
        for plan in plans:
            try:
                sources.append(_source_sums(conn, plan, progress))
            except Exception as exc:  # noqa: BLE001 - reported, and the table is not equal
                sources.append(f"bootstrap store: {exc}")
        for plan, src, future in zip(plans, sources, futures):
            verdict = TableVerdict(plan.name, chunk_seconds=plan.width / 1e6)
            verdicts.append(verdict)
            try:
                tgt = future.result()
            except Exception as exc:  # noqa: BLE001
                tgt = f"timescaledb: {exc}"
            if isinstance(src, str) or isinstance(tgt, str):
                verdict.error = "; ".join(e for e in (src, tgt) if isinstance(e, str))
                continue
            verdict.rows_source = sum(n for n, _ in src.values())
            verdict.rows_target = sum(n for n, _ in tgt.values())
            verdict.chunks = len(src.keys() | tgt.keys())
            bad = sorted(src.keys() ^ tgt.keys() | {b for b in src.keys() & tgt.keys() if src[b] != tgt[b]},
                         key=lambda b: (b is None, b or 0))
            verdict.mismatched_chunks = [plan.chunk(b) for b in bad]
            if bad:
                try:
                    verdict.mismatches = _drill(conn, target, plan, set(bad))
                except Exception as exc:  # noqa: BLE001
                    verdict.error = f"listing the mismatched keys: {exc}"
    return verdicts


def _drill(conn, target, plan: _Plan, bad: set) -> list[Mismatch]:
    """Every differing key of the mismatched chunks: key -> digest on both sides."""
    out: list[Mismatch] = []
    src = _by_bucket(_source_rows(conn, plan, bad), out, plan)
    with target.transaction():
        tgt = _by_bucket(_target_rows(target, plan, *_ranges(plan, bad)), out, plan)
    for bucket in sorted(bad, key=lambda b: (b is None, b or 0)):
        s, t, chunk = src.get(bucket, {}), tgt.get(bucket, {}), plan.chunk(bucket)
        for key in sorted(s.keys() | t.keys()):
            kind = "extra" if key not in s else "missing" if key not in t else "different" if s[key] != t[key] else None
            if kind:
                out.append(Mismatch(plan.key(key), kind, chunk))
    return out


def _by_bucket(rows, out: list[Mismatch], plan: _Plan) -> dict:
    found: dict = {}
    for bucket, key, d in rows:
        keys = found.setdefault(bucket, {})
        if key in keys:
            out.append(Mismatch(plan.key(key), "duplicate", plan.chunk(bucket)))
        keys[key] = d
    return found


# --- the bootstrap store ------------------------------------------------------------------

def _open(path) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


@contextmanager
def _sqlite_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


def _source_sums(conn, plan: _Plan, progress) -> dict:
    fast = None if plan.json else C.batch_digester(plan.kinds, plan.time_at, plan.width)
    sums: dict = {}
    done = 0
    cur = conn.execute(plan.select())
    while rows := cur.fetchmany(BATCH):
        batch = fast(rows) if fast else _slow_sums(plan, rows)
        for bucket, (n, s) in batch.items():
            have = sums.get(bucket)
            sums[bucket] = (n, s) if have is None else (have[0] + n, have[1] + s)
        done += len(rows)
        if progress:
            progress(plan.name, done)
    return sums


def _slow_sums(plan: _Plan, rows) -> dict:
    sums: dict = {}
    for row in rows:
        bucket = C.bucket_of(row[plan.time_at], plan.width)
        n, s = sums.get(bucket, (0, 0))
        sums[bucket] = (n + 1, s + C.digest("|".join(C.row_parts(row, plan.kinds))))
    return sums


def _source_rows(conn, plan: _Plan, wanted: set):
    cur = conn.execute(plan.select())  # no index on the time column alone: one scan for all chunks
    while rows := cur.fetchmany(BATCH):
        for row in rows:
            bucket = C.bucket_of(row[plan.time_at], plan.width)
            if bucket in wanted:
                parts = C.row_parts(row, plan.kinds)
                yield bucket, tuple(parts[i] for i in plan.key_at), C.digest("|".join(parts))


# --- TimescaleDB --------------------------------------------------------------------------

@contextmanager
def _pg_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    if not conn.autocommit:  # the caller's transaction
        yield
        return
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


def _widths(conn, names: list[str]) -> list[int]:
    """The hypertables' chunk intervals; a day for plain tables (and without TimescaleDB)."""
    width = dict.fromkeys(names, DAY_US)
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        for name, us in conn.execute(
                "SELECT hypertable_name, (extract(epoch FROM time_interval) * 1000000)::bigint "
                "FROM timescaledb_information.dimensions WHERE hypertable_schema = current_schema() "
                "AND hypertable_name = ANY(%s) AND time_interval IS NOT NULL", (names,)):
            width[name] = int(us) if us and us > 0 else DAY_US
    encoding = conn.execute("SHOW server_encoding").fetchone()[0]
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise ValueError(f"TimescaleDB's encoding is {encoding}: the checksums need UTF8")
    return [width[n] for n in names]


def _target_sums(conn, plan: _Plan) -> dict:
    with conn.transaction():  # a savepoint: one table's failure leaves the others readable
        if plan.json:
            sums: dict = {}
            for bucket, _, d in _target_rows(conn, plan, "TRUE", []):
                n, s = sums.get(bucket, (0, 0))
                sums[bucket] = (n + 1, s + d)
            return sums
        canon = " || '|' || ".join(C.pg_canonical(plan.quoted(i), k) for i, k in enumerate(plan.kinds))
        return {bucket: (n, int(s)) for bucket, n, s in conn.execute(
            f'SELECT b, count(*), sum(d) FROM (SELECT {C.pg_bucket(plan.quoted(plan.time_at), plan.width)} AS b, '
            f'{C.pg_digest(canon)} AS d FROM "{plan.name}") s GROUP BY b')}


def _target_rows(conn, plan: _Plan, where: str, params: list):
    """(bucket, key parts, digest) of the rows `where` selects, streamed."""
    cols = range(len(plan.kinds)) if plan.json else plan.key_at
    exprs = [C.pg_canonical(plan.quoted(i), plan.kinds[i]) for i in cols]
    if not plan.json:
        canon = " || '|' || ".join(C.pg_canonical(plan.quoted(i), k) for i, k in enumerate(plan.kinds))
        exprs.append(C.pg_digest(canon))
    sql = (f'SELECT {C.pg_bucket(plan.quoted(plan.time_at), plan.width)}, {", ".join(exprs)} '
           f'FROM "{plan.name}" WHERE {where}')
    with conn.cursor(name=f"verify_{plan.name}") as cur:
        cur.itersize = BATCH
        cur.execute(sql, params)
        for bucket, *parts in cur:
            if not plan.json:
                yield bucket, tuple(parts[:-1]), parts[-1]
                continue
            parts = [C.json_text(p) if k == "json" else p for p, k in zip(parts, plan.kinds)]
            yield bucket, tuple(parts[i] for i in plan.key_at), C.digest("|".join(parts))


def _ranges(plan: _Plan, bad: set) -> tuple[str, list]:
    """A WHERE clause selecting the chunks `bad` (adjacent ones merged), chunk exclusion intact."""
    col, w, spans, conds, params, odd = plan.quoted(plan.time_at), plan.width, [], [], [], []
    for bucket in sorted(b for b in bad if b is not None):
        if spans and spans[-1][1] == bucket:
            spans[-1][1] = bucket + 1
        else:
            spans.append([bucket, bucket + 1])
    for lo, hi in spans:
        try:
            bounds = [C.EPOCH_UTC + dt.timedelta(microseconds=b * w) for b in (lo, hi)]
        except OverflowError:  # beyond what Python's datetime holds: by the bucket itself
            odd += range(lo, hi)
            continue
        conds.append(f"({col} >= %s AND {col} < %s)")
        params += bounds
    if odd:
        conds.append(f"{C.pg_bucket(col, w)} = ANY(%s)")
        params.append(odd)
    if None in bad:
        conds.append(f"({col} IS NULL OR NOT isfinite({col}))")
    return " OR ".join(conds) or "FALSE", params
