"""PostgreSQL's binary COPY format made from whole columns (a pyarrow table), with numpy:
no Python object per row or per value, and nothing for the server to parse back from text
(numbers and timestamps travel as their binary values).

The format (PostgreSQL docs, "COPY ... Binary Format"): a signature, flags and a header
extension length; per tuple the field count (int16), then per field its byte length (int32,
-1 for NULL) and its bytes; a trailer of -1 (int16). All integers are big-endian. The types
used here: float8 (IEEE 754 big-endian), int8, timestamptz (int64 microseconds since
2000-01-01 UTC) and text/varchar (UTF-8 bytes; the server still checks a varchar's length).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in microseconds since 1970


def parts(table: pa.Table) -> Iterator[memoryview]:
    """The table's rows in COPY binary format, in column order, as consecutive buffers to
    write to one COPY (nothing joined: each buffer goes to the socket as it is)."""
    yield memoryview(SIGNATURE)
    for batch in table.to_batches():
        if batch.num_rows:
            yield from _batch(batch)
    yield memoryview(TRAILER)


def _batch(batch: pa.RecordBatch) -> Iterator[memoryview]:
    """The batch's tuples. Rows whose values have the same byte lengths share one layout, so
    each such group is one numpy structured array filled column by column (no per-row or
    per-byte work); the groups follow each other (COPY does not care about row order)."""
    n = batch.num_rows
    columns = [_column(column, n) for column in batch.columns]
    varying = [c.length for c in columns if c.varies]
    if not varying:
        yield memoryview(_group(columns, np.arange(n))).cast("B")
        return
    key = np.stack(varying, axis=1)
    order = np.lexsort(key.T[::-1])
    ordered = key[order]
    cuts = np.flatnonzero((ordered[1:] != ordered[:-1]).any(axis=1)) + 1
    for rows in np.split(order, cuts):
        yield memoryview(_group(columns, rows)).cast("B")


class _Column:
    """One column's values as COPY wants them: byte lengths (-1: NULL) and either fixed-width
    big-endian values or text (Arrow offsets into UTF-8 bytes)."""

    def __init__(self, length: np.ndarray, values: np.ndarray | None = None, text=None):
        self.length, self.values, self.text = length, values, text
        self.varies = text is not None or bool((length < 0).any())


def _group(columns: list[_Column], rows: np.ndarray) -> np.ndarray:
    first = rows[0]
    layout = [("count", ">i2")]
    for i, c in enumerate(columns):
        layout.append((f"l{i}", ">i4"))
        size = int(c.length[first])
        if size > 0:
            layout.append((f"v{i}", c.values.dtype if c.text is None else ("u1", (size,))))
    out = np.empty(len(rows), np.dtype(layout))
    out["count"] = len(columns)
    for i, c in enumerate(columns):
        size = int(c.length[first])
        out[f"l{i}"] = size
        if size <= 0:
            continue
        if c.text is None:
            out[f"v{i}"] = c.values[rows]
        else:
            offsets, data = c.text
            out[f"v{i}"] = data[offsets[rows][:, None] + np.arange(size)]
    return out


def _column(column: pa.Array, n: int) -> _Column:
    kind = column.type
    nulls = column.null_count
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), bool) if nulls else None
    if pa.types.is_string(kind):
        if nulls:  # a NULL's slot may span bytes: make every NULL an empty span
            column = column.fill_null("")
        offsets = np.frombuffer(column.buffers()[1], np.int32)[column.offset:column.offset + n + 1].astype(np.int64)
        data = column.buffers()[2]
        data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        length = np.diff(offsets).astype(np.int32)
        if nulls:
            length[~valid] = -1
        return _Column(length, text=(offsets, data))
    if pa.types.is_timestamp(kind):
        if kind.unit != "us" or kind.tz is None:
            raise TypeError(f"timestamps travel as timestamptz in microseconds, not {kind}")
        values = column.cast(pa.int64()).fill_null(0).to_numpy() - PG_EPOCH_US
        big = values.astype(">i8")
    elif pa.types.is_float64(kind):
        big = column.fill_null(0.0).to_numpy().astype(">f8")
    elif pa.types.is_int64(kind):
        big = column.fill_null(0).to_numpy().astype(">i8")
    else:
        raise TypeError(f"no binary COPY encoding here for {kind}")
    length = np.full(n, 8, np.int32)
    if nulls:
        length[~valid] = -1
    return _Column(length, big)
