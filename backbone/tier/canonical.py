"""Canonical row text, computed the same way from the bootstrap store (Python over SQLite
values) and from TimescaleDB (SQL), so a verification can compare checksums of both sides.

A row's canonical text joins its columns with '|'; each column:
- NULL -> `\\N`; text -> the exact string with `\\` doubled and `|` escaped as `\\|`;
- int -> decimal; float -> `NaN`, `Infinity`, `-Infinity`, `0` (for 0.0 and -0.0), else the
  16 hex digits of the big-endian IEEE-754 double;
- ts -> integer microseconds since the Unix epoch, UTC (SQLite text: anything
  `datetime.fromisoformat` parses, naive meaning UTC);
- json -> the parsed value with sorted keys and numbers as exact decimals, so `1.0`, `1` and
  `1e0` are one number (jsonb's own text differs from what was stored in SQLite).
A value the column's kind cannot hold (a blob, text where a number belongs, an unparseable
timestamp) becomes `\\?` and its escaped repr: escaped text never starts with `\\?`, so it
matches nothing TimescaleDB can hold. A row's digest is the first 8 bytes of the md5 of its
canonical text (UTF-8), as a signed big-endian int64.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import struct
import sys
from array import array
from decimal import Decimal
from hashlib import md5
from typing import Any, Callable

NULL = "\\N"
EPOCH = dt.datetime(1970, 1, 1)
EPOCH_UTC = EPOCH.replace(tzinfo=dt.timezone.utc)
US = dt.timedelta(microseconds=1)
_pack = struct.Struct(">d").pack


def escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|")


def unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s, flags=re.S) if "\\" in s else s


def render(part: str, kind: str):
    """A canonical key column as a report shows it: text as stored, a timestamp in ISO 8601
    (UTC, microseconds), an int as an int; NULL as None, anything odd as its canonical text."""
    if part == NULL:
        return None
    if part.startswith("\\?"):
        return part
    if kind == "ts":
        try:
            return (EPOCH + dt.timedelta(microseconds=int(part))).isoformat() + "+00:00"  # naive: faster
        except OverflowError:
            return part
    return int(part) if kind == "int" else unescape(part) if kind == "text" else part


def odd(v: Any) -> str:
    """A value its column's kind cannot hold: never equal to anything TimescaleDB returns."""
    return "\\?" + escape(f"{type(v).__name__}:{v!r}")


def text(v: Any) -> str:
    return NULL if v is None else escape(v) if type(v) is str else odd(v)


def integer(v: Any) -> str:
    return NULL if v is None else int.__repr__(v) if type(v) is int else odd(v)


def floating(v: Any) -> str:
    if v is None:
        return NULL
    if type(v) is int:  # as struct.pack takes it
        try:
            v = float(v)
        except OverflowError:
            return odd(v)
    if type(v) is not float:
        return odd(v)
    if v != v:
        return "NaN"
    if v - v != 0:
        return "Infinity" if v > 0 else "-Infinity"
    return "0" if v == 0 else _pack(v).hex()


def ts_us(v: Any) -> int | None:
    """Microseconds since the epoch of a stored timestamp, None if it is not one."""
    if type(v) is str:
        try:
            v = dt.datetime.fromisoformat(v)
        except ValueError:
            return None
    if not isinstance(v, dt.datetime):
        return None
    return (v - (EPOCH if v.tzinfo is None else EPOCH_UTC)) // US


def timestamp(v: Any) -> str:
    if v is None:
        return NULL
    us = ts_us(v)
    return odd(v) if us is None else str(us)


def json_text(v: Any) -> str:
    if v is None:
        return NULL
    if type(v) is str:
        try:
            v = json.loads(v, parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            return odd(v)
    elif type(v) is int:  # SQLite's NUMERIC affinity turns stored JSON like `5` or `1.0` into numbers
        v = Decimal(v)
    elif type(v) is float:
        v = Decimal(repr(v)) if v - v == 0 else v
    else:
        return odd(v)
    return escape(_json(v))


def _json(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _json(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(map(_json, v)) + "]"
    if isinstance(v, Decimal):
        return _number(v)
    if isinstance(v, float):  # the NaN / Infinity constants Python's json accepts
        return floating(v)
    return json.dumps(v)  # str, bool, None


def _number(d: Decimal) -> str:
    if not d.is_finite():
        return floating(float(d))
    sign, digits, exp = d.as_tuple()
    coefficient = "".join(map(str, digits)).lstrip("0")
    if not coefficient:
        return "0"
    stripped = coefficient.rstrip("0")
    return f"{'-' if sign else ''}{stripped}e{exp + len(coefficient) - len(stripped)}"


CANON: dict[str, Callable[[Any], str]] = {"text": text, "int": integer, "float": floating, "ts": timestamp,
                                           "json": json_text}


def row_parts(row, kinds) -> list[str]:
    return [CANON[k](v) for k, v in zip(kinds, row)]


def digest(canonical: str) -> int:
    return int.from_bytes(md5(canonical.encode()).digest()[:8], "big", signed=True)


def bucket_of(v: Any, width_us: int) -> int | None:
    us = ts_us(v)
    return None if us is None else us // width_us


def digest_sum(digests: list[bytes]) -> int:
    """The exact sum of md5 digests' first 8 bytes as signed big-endian int64s."""
    values = array("q", b"".join(digests))[::2]
    if sys.byteorder == "little":
        values.byteswap()
    return sum(values)


def batch_digester(kinds: tuple[str, ...], time_at: int, width_us: int):
    """fn(rows) -> {bucket: (rows, checksum)}: `row_parts` + `digest` per row, generated per
    table for speed (the common types inline); any other value takes the general path."""
    cols = [f"c{i}" for i in range(len(kinds))]
    lines, fields, i = [], [], 0
    while i < len(kinds):
        kind, c = kinds[i], cols[i]
        if kind == "float":  # a run of floats: one pack, and the common case (finite, non-zero) only
            j = i
            while j < len(kinds) and kinds[j] == "float":
                j += 1
            run = cols[i:j]
            lines += [f"p = {' * '.join(run)}", "if p - p != 0 or p == 0: raise Odd",
                      f"h{i} = _p{j - i}({', '.join(run)}).hex()"]
            fields += [f"{{h{i}[{16 * n}:{16 * n + 16}]}}" for n in range(j - i)]
            i = j
            continue
        if kind == "text":
            fields.append(f"{{NUL if {c} is None else {c}.replace(BS, BS2).replace(BAR, EBAR)}}")
        elif kind == "int":
            fields.append(f"{{NUL if {c} is None else _int({c})}}")
        elif kind == "ts":
            lines.append(f"u{i} = (_iso({c}) - EPOCH) // US")
            fields.append(f"{{u{i}}}")
        else:
            raise ValueError(f"no fast path for {kind} columns")
        i += 1
    body = "\n".join(" " * 12 + line for line in lines)
    packs = {f"_p{n}": struct.Struct(">" + "d" * n).pack for n in range(1, len(kinds) + 1)}
    LOCAL = ("NUL", "BS", "BS2", "BAR", "EBAR", "_int", "_iso", *packs, "EPOCH", "US", "_md5", "W", "slow")
    src = f"""
def digest_batch(rows, {", ".join(f"{n}={n}" for n in LOCAL)}):
    groups = {{}}
    last = app = None
    for row in rows:
        try:
            {", ".join(cols)}, = row
{body}
            d = _md5(f"{'|'.join(fields)}".encode()).digest()
            b = u{time_at} // W
        except Exception:
            b, d = slow(row)
        if b != last or app is None:
            lst = groups.get(b)
            if lst is None:
                lst = groups[b] = []
            app, last = lst.append, b
        app(d)
    return {{b: (len(lst), digest_sum(lst)) for b, lst in groups.items()}}
"""

    def slow(row):  # the reference: row_parts + digest
        return bucket_of(row[time_at], width_us), md5("|".join(row_parts(row, kinds)).encode()).digest()

    scope = {"NUL": NULL, "Odd": ValueError, **packs, "BS": "\\", "BS2": "\\\\", "BAR": "|", "EBAR": "\\|",
             "_int": int.__repr__, "_iso": dt.datetime.fromisoformat, "EPOCH": EPOCH, "US": US, "_md5": md5,
             "W": width_us, "slow": slow, "digest_sum": digest_sum}
    exec(src, scope)  # noqa: S102 - generated from the column kinds only, never from data
    return scope["digest_batch"]


# --- the same canonical text in PostgreSQL -------------------------------------------------

# E'' literals: the same whatever standard_conforming_strings says
_BS, _BS2, _EBAR, _NULL, _ODD = "E'\\\\'", "E'\\\\\\\\'", "E'\\\\|'", "E'\\\\N'", "E'\\\\?'"


def pg_us(col: str) -> str:
    """Exact microseconds since the epoch (`extract` gives numeric since PostgreSQL 14)."""
    return f"extract(epoch FROM {col}) * 1000000"


def pg_canonical(col: str, kind: str) -> str:
    """SQL for a column's canonical text (json: the value's text, canonicalised in Python)."""
    if kind == "text":
        expr = f"replace(replace({col}, {_BS}, {_BS2}), '|', {_EBAR})"
    elif kind == "int":
        expr = f"{col}::text"
    elif kind == "float":
        expr = (f"CASE WHEN {col} = 0 THEN '0' WHEN {col} = 'NaN' THEN 'NaN' WHEN {col} = 'Infinity' THEN 'Infinity' "
                f"WHEN {col} = '-Infinity' THEN '-Infinity' ELSE encode(float8send({col}), 'hex') END")
    elif kind == "ts":
        expr = f"CASE WHEN isfinite({col}) THEN trunc({pg_us(col)})::text ELSE {_ODD} || {col}::text END"
    else:
        return f"{col}::text"
    return f"coalesce({expr}, {_NULL})"


def pg_digest(canonical_sql: str) -> str:
    return f"('x' || md5({canonical_sql}))::bit(64)::bigint"


def pg_bucket(col: str, width_us: int) -> str:
    """floor(epoch_us / width) as SQL, exact (numeric `div` truncates, so shifted past the
    earliest timestamp PostgreSQL holds); NULL for NULL and infinite timestamps."""
    w = int(width_us)
    k = -(-300_000_000_000_000_000 // w)  # k * w > 4713 BC in microseconds before the epoch
    return (f"CASE WHEN isfinite({col}) THEN (div({pg_us(col)} + {k * w}, {w}) - {k})::bigint "
            "END")


def spans(buckets) -> list[list[int]]:
    """Ascending buckets (None skipped) merged into [first, after last) runs."""
    out: list[list[int]] = []
    for bucket in (b for b in buckets if b is not None):
        if out and out[-1][1] == bucket:
            out[-1][1] = bucket + 1
        else:
            out.append([bucket, bucket + 1])
    return out


def pg_where_buckets(col: str, width_us: int, buckets: list) -> tuple[str, list]:
    """A WHERE clause (and its parameters) for the rows of `buckets` (ascending; None: no
    usable time), adjacent ones merged into one range so TimescaleDB reads only their chunks."""
    conds, params, odd = [], [], []
    for lo, hi in spans(buckets):
        try:
            params += [EPOCH_UTC + dt.timedelta(microseconds=lo * width_us),
                       EPOCH_UTC + dt.timedelta(microseconds=hi * width_us)]
        except OverflowError:  # beyond Python's datetime: by the bucket itself
            odd += range(lo, hi)
            continue
        conds.append(f"({col} >= %s AND {col} < %s)")
    if odd:
        conds.append(f"{pg_bucket(col, width_us)} = ANY(%s)")
        params.append(odd)
    if None in buckets:
        conds.append(f"({col} IS NULL OR NOT isfinite({col}))")
    return " OR ".join(conds) or "FALSE", params


def sqlite_where_buckets(col: str, width_us: int, buckets: list) -> tuple[str, list]:
    """A WHERE clause for SQLite that keeps at least the rows of `buckets` (stored text starts
    with a local date within a day of the UTC one, or is spelled otherwise), for Python to
    filter exactly; everything when a bucket has no usable time or lies beyond the calendar."""
    conds, params = [], []
    for lo, hi in spans(buckets):
        try:
            first = (EPOCH + dt.timedelta(microseconds=lo * width_us, days=-1)).date()
            after = (EPOCH + dt.timedelta(microseconds=hi * width_us, days=2)).date()
        except OverflowError:
            return "TRUE", []
        conds.append(f"({col} >= ? AND {col} < ?)")
        params += [first.isoformat(), after.isoformat()]
    if None in buckets or len(conds) > 200:
        return "TRUE", []
    conds.append(f"NOT {col} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'")  # other ISO spellings
    return " OR ".join(conds), params
