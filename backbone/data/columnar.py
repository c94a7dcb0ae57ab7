"""The columnar, streaming file reader: an ingest file as bounded batches of validated columns
(pyarrow tables), for the stores' `upsert_table` — no Python object per row.

A CSV file is read in blocks of about `BLOCK` bytes cut at a line end. A *regular* block —
one record per physical line: no quote, NUL or lone carriage return, no blank line, no line
long enough to trouble the row reader, every line with the header's number of cells — is
parsed by pyarrow with every cell as text, and its line numbers are simply consecutive. The
validation then runs on whole columns and is deliberately conservative: a row it accepts
passes every rule of `rows.to_row` with the same typed values; any row it doubts (a number
or timestamp outside the plain forms, a failed rule) is rebuilt as the row reader's record
(`files._layout`) and decided by `rows.to_row` itself, so a refused row carries exactly the
row path's line number and reason. From the first irregular block on, or on anything that
makes the file unreadable (gzip, UTF-8), the rest of the file goes through the row reader
(`files.read_records`), which raises the very same `FileFormatError`.

JSON lines, and macro files (small, with many optional fields), are read by the row reader
and handed over in the same batches, as columns.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import zlib
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from . import files
from .rows import Dimension, RowError, SeriesChanges, dimension as lookup, to_row

BLOCK = 1 << 23  # bytes per CSV block: about 100k bars
FIRST_BLOCK = BLOCK // 16  # the first is smaller: the store starts writing sooner (see `ahead`)
ROWS = 100_000  # records per batch on the row reader
LONG_LINE = 100_000  # bytes: under csv's field limit and `files.MAX_LINE`
UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
# ISO 8601 with a zone, years 1000-8999 (no overflow when moved to UTC)
STAMP = (r"^[1-8][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
         r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
SYMBOL = r"^[A-Z0-9^][A-Z0-9._\-/=^]{0,31}$"
TEXT = r"^[\x20-\x7e]{1,64}$"
_BARE_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dataclasses.dataclass
class Batch:
    received: int  # records read
    table: pa.Table  # the valid rows, typed, in `dim.columns` order and file order
    errors: list[RowError]  # every refused row of the batch, in line order
    prepared: Any = None  # the store's work on `table` that needs no connection (`prepare`), made ahead


def schema(dim: Dimension) -> pa.Schema:
    types = {f.name: f.type for f in dataclasses.fields(dim.row)}
    kind = {"str": pa.string(), "str | None": pa.string(), "dt.datetime": TS, "float": pa.float64(),
            "float | None": pa.float64(), "int": pa.int64()}
    return pa.schema([(c, kind[types[c]]) for c in dim.columns])


def rows_to_table(dim: Dimension, rows: list) -> pa.Table:
    return pa.Table.from_arrays([pa.array(list(map(attrgetter(c), rows)), type=f.type)
                                 for c, f in zip(dim.columns, schema(dim))], schema=schema(dim))


def table_changes(dim: Dimension, table: pa.Table) -> SeriesChanges:
    """The changes of a table's rows all newly inserted (as `rows.series_changes`)."""
    if not table.num_rows:
        return {}
    first = dim.key[0]
    grouped = table.group_by(first).aggregate([("ts", "count"), ("ts", "min"), ("ts", "max")])
    return {s: [n, 0, _utc(lo), _utc(hi)] for s, n, lo, hi in zip(
        grouped[first].to_pylist(), grouped["ts_count"].to_pylist(), grouped["ts_min"].to_pylist(),
        grouped["ts_max"].to_pylist())}


def series_of(dim: Dimension, table: pa.Table) -> set[str]:
    return set(pc.unique(table[dim.key[0]]).to_pylist())


def newest(table: pa.Table) -> dt.datetime | None:
    return _utc(pc.max(table["ts"]).as_py()) if table.num_rows else None


def last_per_key(dim: Dimension, table: pa.Table) -> pa.Table:
    """The table with the last row of each key only (the row path's `dict(zip(keys, rows))`)."""
    at = table.append_column("__at", pa.array(np.arange(table.num_rows)))
    keep = at.group_by(list(dim.key), use_threads=False).aggregate([("__at", "max")])["__at_max"]
    # the rows to keep are the positions themselves, in file order (not the order that sorts them)
    return table if len(keep) == table.num_rows else table.take(np.sort(keep.to_numpy()))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=UTC)


class GeneratedBatches:
    """`generate.generate`'s rows as `Batch`es of columns, for `--generate` to take the same
    store path as a file (the rows are still made one by one, then checked and turned into
    columns a batch at a time)."""

    def __init__(self, dimension: str, n: int, symbols: int, seed: int):
        from .generate import generate
        self.dim, self.made = lookup(dimension), generate(dimension, n, symbols, seed)

    def __iter__(self) -> Iterator[Batch]:
        from .rows import FAST_CHECKS
        fast, position = FAST_CHECKS[self.dim.name], 1
        while chunk := list(islice(self.made, ROWS)):
            rows, errors = [], []
            for offset, row in enumerate(chunk, position):
                try:
                    rows.append(row if fast(row) else to_row(self.dim, row, offset))
                except RowError as exc:
                    errors.append(exc)
            position += len(chunk)
            yield Batch(len(chunk), rows_to_table(self.dim, rows), errors)


class FileBatches:
    """An ingest file as `Batch`es, lazily; iterate again to read it again (a retried load)."""

    def __init__(self, path: Path | str, dimension: str, symbol: str | None = None):
        self.path, self.dim, self.symbol = Path(path), lookup(dimension), symbol
        if symbol is not None and "symbol" not in self.dim.columns:
            raise ValueError(f"symbol applies to files with a symbol column, not to {self.dim.name}")
        self.format = files.file_format(self.path)

    def __iter__(self) -> Iterator[Batch]:
        if self.format != "csv" or self.dim.name == "macro":
            return self._rows(0)
        return self._csv()

    # --- the row reader, from a line on ----------------------------------------------

    def _rows(self, start: int) -> Iterator[Batch]:
        records = ((line, record) for line, record in files.read_records(self.path, self.dim.name, self.symbol)
                   if line >= start)
        while chunk := list(islice(records, ROWS)):
            rows, errors = [], []
            for line, record in chunk:
                try:
                    rows.append(to_row(self.dim, record, line))
                except RowError as exc:
                    errors.append(exc)
            yield Batch(len(chunk), rows_to_table(self.dim, rows), errors)

    # --- CSV, block by block ---------------------------------------------------------

    def _csv(self) -> Iterator[Batch]:
        blocks = _blocks(self.path)
        first = next(blocks, None)
        if first is None:  # empty, or unreadable from the start
            yield from self._rows(0)
            return
        header, line, rest = _header(first)
        if header is None or rest is None:  # no header in the first block, or one the row reader must judge
            yield from self._rows(0)
            return
        to_record = files._layout(self.path, header, self.dim, self.symbol)  # the header's checks and errors
        names = [files._norm(h) for h in header]
        vendor = files.sniff_layout(header, self.dim.name) == "vendor"
        known = files.VENDOR_BARS if vendor else {c: c for c in self.dim.columns}
        targets = [known.get(n) for n in names]
        block = rest
        while True:
            if block:
                batch = _regular(block, len(targets)) and self._validated(block, line, targets, vendor, to_record)
                if not batch:
                    yield from self._rows(line)
                    return
                yield batch
                line += batch.received
            block = next(blocks, b"")
            if block is None:
                yield from self._rows(line)
                return
            if not block:
                return

    def _validated(self, block: bytes, line: int, targets: list, vendor: bool, to_record) -> Batch | None:
        width = len(targets)
        try:
            raw = pcsv.read_csv(pa.py_buffer(block), pcsv.ReadOptions(column_names=[f"c{i}" for i in range(width)],
                                                                      block_size=len(block) + 1, use_threads=False),
                                pcsv.ParseOptions(quote_char=False, double_quote=False, newlines_in_values=False,
                                                  ignore_empty_lines=False),
                                pcsv.ConvertOptions(column_types={f"c{i}": pa.string() for i in range(width)}))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # wrong cell counts, bad UTF-8: the row reader's job
        n = raw.num_rows
        if n != block.count(b"\n") + (not block.endswith(b"\n")):
            return None
        cells = raw.columns
        blank = None
        for column in cells:
            empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0)
            blank = empty if blank is None else pc.and_(blank, empty)
        if n and pc.any(blank).as_py():
            return None  # a line of blanks and commas is skipped by the row reader
        record = {t: cells[i] for i, t in enumerate(targets) if t is not None}
        if self.symbol is not None and "symbol" not in record:
            record["symbol"] = pa.array([self.symbol] * n, pa.string())
        if vendor:
            ts = record["ts"]
            record["ts"] = pc.if_else(pc.match_substring_regex(ts, _BARE_DATE),
                                      pc.binary_join_element_wise(ts, "T00:00:00+00:00", ""), ts)
        typed, ok = _CHECK[self.dim.name](record, n)
        if typed is None:
            return None
        return self._settle(typed, ok, cells, line, to_record)

    def _settle(self, typed: pa.Table, ok, cells, line: int, to_record) -> Batch:
        """Hand the doubted rows to `to_row` (its reasons and line numbers) and keep the file order."""
        doubted = np.flatnonzero(~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))
        if not len(doubted):
            return Batch(typed.num_rows, typed, [])
        taken = pa.array(doubted)
        texts = [c.take(taken).to_pylist() for c in cells]
        rows, at, errors = [], [], []
        for k, index in enumerate(doubted):
            try:
                rows.append(to_row(self.dim, to_record([t[k] for t in texts]), line + int(index)))
                at.append(int(index))
            except RowError as exc:
                errors.append(exc)
        kept = typed.filter(ok)
        if rows:
            positions = np.concatenate([np.flatnonzero(np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)),
                                        np.asarray(at)])
            kept = pa.concat_tables([kept, rows_to_table(self.dim, rows)]).take(pa.array(np.argsort(positions,
                                                                                                    kind="stable")))
        return Batch(typed.num_rows, kept, errors)


def _blocks(path: Path) -> Iterator[bytes | None]:
    """The file's bytes in blocks ending at a line end (the last one may not); None, and the
    end, where the bytes cannot be cut into blocks (gzip, a long line): the row reader's job."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == files.GZIP_MAGIC
        raw.seek(0)
        if path.name.lower().endswith(".gz") and not compressed:
            yield None
            return
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        pending, size = b"", min(FIRST_BLOCK, BLOCK)
        while True:
            try:
                data = stream.read(size)
                size = BLOCK
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
                yield None
                return
            if not data:
                if pending:
                    yield pending
                return
            pending += data
            cut = pending.rfind(b"\n")
            if cut < 0:
                if len(pending) > LONG_LINE:
                    yield None
                    return
                continue
            block, pending = pending[:cut + 1], pending[cut + 1:]
            yield block


def _header(block: bytes) -> tuple[list[str] | None, int, bytes | None]:
    """(header cells, line number of the first data line, the block's bytes after the header),
    or (None, ...) when the row reader must read the header."""
    number, at = 0, 0
    while at < len(block):
        end = block.find(b"\n", at)
        end = len(block) if end < 0 else end + 1
        number += 1
        text = block[at:end]
        at = end
        if b'"' in text or b"\x00" in text:
            return None, 0, None
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            return None, 0, None
        cells = next(csv.reader([decoded.removeprefix("\ufeff") if number == 1 else decoded]), [])
        if any(c.strip() for c in cells):
            return cells, number + 1, block[at:]
    return None, 0, None


def _regular(block: bytes, width: int) -> bool:
    if b'"' in block or b"\x00" in block or block.count(b"\r") != block.count(b"\r\n"):
        return False
    if block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block:
        return False
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    longest = max(int(np.diff(ends).max()) if len(ends) > 1 else 0, int(ends[0]) + 1 if len(ends) else len(block),
                  len(block) - (int(ends[-1]) + 1 if len(ends) else 0))
    return longest <= LONG_LINE


# --- validation on whole columns ------------------------------------------------------

def _numbers(record: dict, names: tuple[str, ...], n: int):
    """The columns as float64 and the mask of cells in a plain decimal form, finite."""
    ok, out = pa.array(np.ones(n, dtype=bool)), {}
    for name in names:
        text = record.get(name)
        if text is None:
            return {k: pa.array(np.zeros(n)) for k in names}, pa.array(np.zeros(n, dtype=bool))
        plain = pc.match_substring_regex(text, NUMBER)
        value = pc.cast(pc.if_else(plain, text, "0"), pa.float64())
        ok = pc.and_(ok, pc.and_(plain, pc.is_finite(value)))
        out[name] = value
    return out, ok


def _common(record: dict, n: int, ok):
    """symbol, ts and source: the columns and the mask narrowed by their rules."""
    symbol = record.get("symbol")
    ts_text = record.get("ts")
    if symbol is None or ts_text is None:
        return None, None, None, pa.array(np.zeros(n, dtype=bool))
    ok = pc.and_(ok, pc.match_substring_regex(symbol, SYMBOL))
    plain = pc.match_substring_regex(ts_text, STAMP)
    ok = pc.and_(ok, plain)
    try:
        ts = pc.cast(pc.if_else(plain, ts_text, "2000-01-01T00:00:00Z"), TS)
    except pa.ArrowInvalid:  # a day that does not exist (Feb 30): each value on its own
        stamps = []
        for value, good in zip(ts_text.to_pylist(), plain.to_pylist()):
            try:
                stamps.append(pc.cast(pa.array([value if good else "2000-01-01T00:00:00Z"]), TS)[0].as_py())
            except pa.ArrowInvalid:
                stamps.append(None)
        ts = pa.array(stamps, TS)
        ok = pc.and_(ok, pc.is_valid(ts))
        ts = pc.fill_null(ts, pa.scalar(0, TS))
    source = record.get("source")
    if source is None:
        source = pa.array(["backbone"] * n, pa.string())
    else:
        empty = pc.equal(source, "")
        ok = pc.and_(ok, pc.or_(empty, pc.match_substring_regex(source, TEXT)))
        source = pc.if_else(empty, "backbone", source)
    return symbol, ts, source, ok


def _bars(record: dict, n: int):
    num, ok = _numbers(record, ("open", "high", "low", "close", "volume"), n)
    o, h, low, c, v = (num[k] for k in ("open", "high", "low", "close", "volume"))
    ok = pc.and_(ok, pc.and_(pc.greater_equal(h, low), pc.and_(
        pc.and_(pc.less_equal(low, o), pc.less_equal(o, h)), pc.and_(pc.less_equal(low, c), pc.less_equal(c, h)))))
    ok = pc.and_(ok, pc.and_(pc.and_(pc.greater_equal(v, 0.0), pc.less(v, 9.0e18)), pc.equal(pc.floor(v), v)))
    symbol, ts, source, ok = _common(record, n, ok)
    if symbol is None:
        return None, ok
    volume = pc.cast(pc.if_else(ok, v, 0.0), pa.int64())
    return pa.Table.from_arrays([symbol, ts, o, h, low, c, volume, source], schema=schema(lookup("bars"))), ok


def _trades(record: dict, n: int):
    num, ok = _numbers(record, ("price", "size"), n)
    price, size = num["price"], num["size"]
    ok = pc.and_(ok, pc.and_(pc.greater(price, 0.0), pc.greater_equal(size, 0.0)))
    side = record.get("side")
    if side is None:
        side = pa.nulls(n, pa.string())
    else:
        empty = pc.equal(side, "")
        ok = pc.and_(ok, pc.or_(empty, pc.match_substring_regex(side, "^(?i)(buy|sell)$")))
        side = pc.if_else(empty, pa.scalar(None, pa.string()), pc.ascii_lower(side))
    trade_id = record.get("trade_id")
    if trade_id is None:
        return None, pa.array(np.zeros(n, dtype=bool))
    ok = pc.and_(ok, pc.match_substring_regex(trade_id, TEXT))
    symbol, ts, source, ok = _common(record, n, ok)
    if symbol is None:
        return None, ok
    return pa.Table.from_arrays([symbol, ts, trade_id, price, size, side, source],
                                schema=schema(lookup("trades"))), ok


_CHECK = {"bars": _bars, "trades": _trades}
