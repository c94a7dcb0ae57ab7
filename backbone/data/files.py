"""Streaming readers for ingest files: CSV or JSON lines, either optionally gzip-compressed.

`read_records` yields (line number, column -> raw value) one record at a time, so memory stays
flat however large the file (lines are capped at `MAX_LINE` bytes, so a file without newlines
cannot defeat that either). Values are passed through: refusing bad rows is `rows.to_row`'s
job, so one bad row never sinks a file. `FileFormatError` is for problems that make the whole
file unreadable; its messages name the file and the problem, never row values.

Line numbers are the file's own, 1-based, blank lines counted: a CSV's header is line 1 and
its data starts at 2 (a record with a quoted newline gets its first line); JSON lines start at 1.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import re
import zlib
from contextlib import closing
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ConfigError
from .rows import Dimension, dimension as lookup

GZIP_MAGIC = b"\x1f\x8b"
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
MAX_LINE = 1 << 20
# Yahoo-style daily bars, header -> bar column. Adj Close is dropped: we store traded
# prices, and adjustments are derived data.
VENDOR_BARS = {"date": "ts", "open": "open", "high": "high", "low": "low", "close": "close",
               "adj close": None, "volume": "volume"}
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class FileFormatError(ConfigError):
    """The whole file cannot be read; the message names the file and the problem (bad input, exit 2;
    a ValueError too)."""


def read_records(path: Path | str, dimension: str, symbol: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each record of an ingest file, lazily. Suffix and arguments are
    checked now; the file is opened on the first `next()`, so its problems surface while
    iterating. `symbol` fills a missing symbol column (the vendor bar layout needs it)."""
    path, dim = Path(path), lookup(dimension)
    if symbol is not None and "symbol" not in dim.columns:
        raise ValueError(f"symbol applies to files with a symbol column, not to {dim.name}")
    return (_csv_records if file_format(path) == "csv" else _json_records)(path, dim, symbol)


def file_format(path: Path) -> str:
    """'csv' or 'jsonl', from the suffix (a trailing .gz is looked through)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(JSON_SUFFIXES):
        return "jsonl"
    raise FileFormatError(f"{path}: unknown file type; expected .csv, .jsonl, .ndjson or .json, "
                          "optionally ending in .gz")


def layout_of(path: Path, dimension: str) -> str:
    """'jsonl', or a CSV's layout from its header ('vendor' or 'standard', see `sniff_layout`);
    'standard' too when there is no header to read (the ingest then refuses the file)."""
    if file_format(path) == "jsonl":
        return "jsonl"
    with closing(_lines(path)) as lines:
        try:
            header = next((cells for cells in csv.reader(lines) if any(c.strip() for c in cells)), None)
        except csv.Error:
            return "standard"
    return "standard" if header is None else sniff_layout(header, dimension)


def sniff_layout(header: list[str], dimension: str) -> str:
    """'vendor' for a Yahoo-style daily-bar header (Date instead of ts), else 'standard'."""
    names = {_norm(h) for h in header}
    return "vendor" if dimension == "bars" and "date" in names and "ts" not in names else "standard"


def required_columns(dim: Dimension) -> tuple[str, ...]:
    """The columns a file must carry: the row fields without a default."""
    return tuple(f.name for f in dataclasses.fields(dim.row)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def _lines(path: Path) -> Iterator[str]:
    # Decoding line by line (not through a TextIOWrapper, which decodes in chunks) is what
    # lets an encoding error name its exact line. UTF-8 never uses byte 0x0A inside a
    # character, so splitting the bytes on newlines first is safe.
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if path.name.lower().endswith(".gz") and not compressed:
            raise FileFormatError(f"{path}: named .gz but is not gzip-compressed")
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        number = 0
        while True:
            try:
                line = stream.readline(MAX_LINE + 1)
            except (EOFError, gzip.BadGzipFile, zlib.error):
                raise FileFormatError(f"{path}: gzip data is truncated or corrupt after line {number}") from None
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE:
                raise FileFormatError(f"{path}: line {number} is longer than {MAX_LINE} bytes")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"{path}: line {number} is not valid UTF-8 "
                                      f"(byte {exc.start + 1}); save the file as UTF-8") from None
            yield text.removeprefix("\ufeff") if number == 1 else text  # spreadsheet exports add a BOM


def _csv_records(path: Path, dim: Dimension, symbol: str | None) -> Iterator[tuple[int, dict]]:
    to_record: Callable[[list[str]], dict] | None = None
    last = 0
    # closing(): a consumer that stops early closes the file now, not whenever it is collected.
    with closing(_lines(path)) as lines:
        reader = csv.reader(lines)
        try:
            for cells in reader:
                number, last = last + 1, reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue
                if to_record is None:
                    to_record = _layout(path, cells, dim, symbol)
                else:
                    yield number, to_record(cells)
        except csv.Error as exc:
            raise FileFormatError(f"{path}: line {reader.line_num} is not valid CSV ({exc})") from None
    if to_record is None:
        raise FileFormatError(f"{path}: empty file; expected a header row of {', '.join(dim.columns)}")


def _layout(path: Path, header: list[str], dim: Dimension, symbol: str | None) -> Callable[[list[str]], dict]:
    """Check the header once and return the cells -> record mapping for every data row."""
    names = [_norm(h) for h in header]
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    if duplicated:
        raise FileFormatError(f"{path}: duplicate column(s) {_listed(duplicated)}")
    vendor = sniff_layout(header, dim.name) == "vendor"
    if vendor:
        if symbol is None:
            raise FileFormatError(f"{path}: vendor daily-bar layout (Date,Open,High,Low,Close,Adj Close,Volume) "
                                  "has no symbol column; give the symbol it holds (--symbol)")
        known, required = VENDOR_BARS, tuple(n for n, column in VENDOR_BARS.items() if column)
    else:
        known = {c: c for c in dim.columns}
        required = tuple(c for c in required_columns(dim) if not (c == "symbol" and symbol is not None))
    # An unnamed column (pandas writes its index that way) carries nothing we could store.
    unknown = [n for n in names if n and n not in known]
    missing = [c for c in required if c not in names]
    problems = [f"missing required column(s) {', '.join(missing)}"] if missing else []
    problems += [f"unknown column(s) {_listed(unknown)}"] if unknown else []
    if problems:
        raise FileFormatError(f"{path}: {'; '.join(problems)}; a {dim.name} file has "
                              f"{', '.join(c for c in known if known[c])}")
    targets = [known.get(n) for n in names]
    fill = {"symbol": symbol} if symbol is not None and "symbol" not in targets else {}

    def to_record(cells: list[str]) -> dict[str, Any]:
        record = {t: v for t, v in zip(targets, cells) if t is not None}
        # Extra cells stay visible so rows.py refuses the row rather than data vanishing;
        # empty ones are only trailing commas.
        record.update({f"extra field {i}": v for i, v in enumerate(cells[len(targets):], len(targets) + 1)
                       if v.strip()})
        record.update(fill)
        if vendor and _BARE_DATE.fullmatch(record.get("ts", "")):
            record["ts"] += "T00:00:00+00:00"  # a daily bar's date is its UTC midnight
        return record

    return to_record


def _json_records(path: Path, dim: Dimension, symbol: str | None) -> Iterator[tuple[int, dict]]:
    hint = "expected one JSON object per line"
    with closing(_lines(path)) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{path}: line {number} is not valid JSON "
                                      f"({exc.msg} at column {exc.colno}); {hint}") from None
            except RecursionError:
                raise FileFormatError(f"{path}: line {number} is nested too deeply; {hint}") from None
            if not isinstance(value, dict):
                kind = {list: "an array", str: "a string"}.get(type(value), "a number or literal")
                raise FileFormatError(f"{path}: line {number} is {kind}, not a JSON object; {hint}")
            if symbol is not None:
                value.setdefault("symbol", symbol)
            yield number, value


def _norm(name: str) -> str:
    return name.strip().lower()


def _listed(names: list[str]) -> str:
    return ", ".join(repr(n[:40]) for n in names)
