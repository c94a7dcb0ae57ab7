"""Typed market-data rows and their validation.

Three dimensions: daily `bars`, intraday `trades` and `macro` events. A row is refused with
its position and the reason: non-finite numbers, high below low (or open/close outside the
range), a timestamp without a time zone, negative volume or size, a symbol outside
`SYMBOL` (1-32 of A-Z 0-9 . _ - / = ^, starting with a letter or digit: tickers, futures
like ES=F, indices like ^GSPC, pairs like EUR/USD).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Iterable, Mapping

SYMBOL = re.compile(r"^[A-Z0-9^][A-Z0-9._\-/=^]{0,31}$")
SIDES = ("buy", "sell")
IMPORTANCE = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    source: str = "backbone"


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    ts: dt.datetime
    trade_id: str
    price: float
    size: float
    side: str | None = None
    source: str = "backbone"


@dataclass(frozen=True, slots=True)
class MacroEvent:
    calendar: str
    event: str
    ts: dt.datetime
    currency: str | None = None
    importance: str | None = None
    actual: float | None = None
    forecast: float | None = None
    previous: float | None = None
    source: str = "backbone"


@dataclass(frozen=True)
class Dimension:
    name: str
    table: str
    row: type
    key: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.row))

    def key_of(self, row) -> tuple:
        return attrgetter(*self.key)(row)


DIMENSIONS = {
    "bars": Dimension("bars", "daily_bars", Bar, ("symbol", "ts")),
    "trades": Dimension("trades", "intraday_trades", Trade, ("symbol", "ts", "trade_id")),
    "macro": Dimension("macro", "macro_events", MacroEvent, ("calendar", "event", "ts")),
}


# what a write changed, per series (a symbol; a calendar for macro):
# {series: [rows inserted, rows updated, first ts, last ts]} over the changed rows
SeriesChanges = dict[str, list]


def series_changes(dim: Dimension, rows: list) -> SeriesChanges:
    """The changes of rows all newly inserted (one pass, no sort)."""
    out: SeriesChanges = {}
    for series, ts in zip(map(attrgetter(dim.key[0]), rows), map(attrgetter("ts"), rows)):
        entry = out.get(series)
        if entry is None:
            out[series] = [1, 0, ts, ts]
        else:
            entry[0] += 1
            if ts < entry[2]:
                entry[2] = ts
            elif ts > entry[3]:
                entry[3] = ts
    return out


def merge_changes(total: SeriesChanges, more: SeriesChanges) -> None:
    for series, (inserted, updated, first, last) in more.items():
        entry = total.get(series)
        if entry is None:
            total[series] = [inserted, updated, first, last]
        else:
            entry[0] += inserted
            entry[1] += updated
            entry[2] = min(entry[2], first)
            entry[3] = max(entry[3], last)


class RowError(ValueError):
    """One bad row: `position` is its place in the input (a line number for files)."""

    def __init__(self, position: int, reason: str):
        super().__init__(f"row {position}: {reason}")
        self.position = position
        self.reason = reason


def dimension(name: str) -> Dimension:
    try:
        return DIMENSIONS[name]
    except KeyError:
        raise ValueError(f"unknown dimension {name!r}; one of {', '.join(DIMENSIONS)}") from None


def to_row(dim: Dimension, record: Mapping[str, Any] | Any, position: int):
    """A validated row from a mapping (parsed file line) or a row object."""
    if isinstance(record, dim.row):
        if FAST_CHECKS[dim.name](record):
            return record  # already typed and sound: no copy
        values = {f: getattr(record, f) for f in dim.columns}
    elif isinstance(record, Mapping):
        unknown = set(record) - set(dim.columns)
        if unknown:
            raise RowError(position, f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        values = dict(record)
    else:
        raise RowError(position, f"expected a {dim.row.__name__} or a mapping, got {type(record).__name__}")
    try:
        return _CHECKS[dim.name](values)
    except RowError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise RowError(position, str(exc) if not isinstance(exc, KeyError) else f"missing {exc.args[0]}") from None


def validate(dim: Dimension, records: Iterable, start: int = 1):
    """Yield (position, row or RowError) for each record."""
    for position, record in enumerate(records, start):
        try:
            yield position, to_row(dim, record, position)
        except RowError as exc:
            yield position, exc


def _symbol(value: Any, what: str = "symbol") -> str:
    if not isinstance(value, str) or not SYMBOL.match(value):
        raise ValueError(f"{what} {str(value)[:40]!r} is outside the symbol character set "
                         "(1-32 of A-Z 0-9 . _ - / = ^)")
    return value


def _ts(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"ts {value[:40]!r} is not an ISO 8601 timestamp") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"ts must be a timestamp, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("ts has no time zone (naive timestamps are ambiguous; give an offset, e.g. Z)")
    return value.astimezone(dt.timezone.utc)


def _number(values: Mapping, name: str, optional: bool = False) -> float | None:
    value = values.get(name)
    if value is None or value == "":
        if optional:
            return None
        raise ValueError(f"{name} is missing")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} is not finite ({value})")
    return number


def _text(values: Mapping, name: str, default: str | None = None, limit: int = 64) -> str | None:
    value = values.get(name, default)
    if value is None or value == "":
        return default
    value = str(value)
    if len(value) > limit or not value.isprintable():
        raise ValueError(f"{name} must be printable text of at most {limit} characters")
    return value


def _bar(v: Mapping) -> Bar:
    o, h, low, c = (_number(v, k) for k in ("open", "high", "low", "close"))
    if h < low:
        raise ValueError(f"high {h:g} is below low {low:g}")
    if not (low <= o <= h and low <= c <= h):
        raise ValueError(f"open {o:g} / close {c:g} outside the low-high range {low:g}-{h:g}")
    volume = _number(v, "volume")
    if volume < 0 or volume != int(volume):
        raise ValueError(f"volume must be a whole number of at least 0, got {volume:g}")
    if volume >= 2 ** 63:  # both stores keep a 64-bit integer
        raise ValueError(f"volume {volume:g} is above the largest the stores keep (2^63 - 1)")
    return Bar(_symbol(v.get("symbol")), _ts(v.get("ts")), o, h, low, c, int(volume),
               _text(v, "source", "backbone"))


def _trade(v: Mapping) -> Trade:
    price, size = _number(v, "price"), _number(v, "size")
    if price <= 0:
        raise ValueError(f"price must be above 0, got {price:g}")
    if size < 0:
        raise ValueError(f"size must be at least 0, got {size:g}")
    side = _text(v, "side")
    if side is not None and side.lower() not in SIDES:
        raise ValueError(f"side must be buy or sell, got {side[:10]!r}")
    trade_id = _text(v, "trade_id")
    if trade_id is None:
        raise ValueError("trade_id is missing")
    return Trade(_symbol(v.get("symbol")), _ts(v.get("ts")), trade_id, price, size,
                 side.lower() if side else None, _text(v, "source", "backbone"))


def _macro(v: Mapping) -> MacroEvent:
    importance = _text(v, "importance")
    if importance is not None and importance.lower() not in IMPORTANCE:
        raise ValueError(f"importance must be low, medium or high, got {importance[:10]!r}")
    currency = _text(v, "currency", limit=8)
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError("currency must be a three-letter ISO 4217 code")
    calendar, event = _text(v, "calendar"), _text(v, "event", limit=256)
    if not calendar or not event:
        raise ValueError("calendar and event are required")
    return MacroEvent(calendar, event, _ts(v.get("ts")), currency, importance.lower() if importance else None,
                      _number(v, "actual", True), _number(v, "forecast", True), _number(v, "previous", True),
                      _text(v, "source", "backbone"))


_CHECKS = {"bars": _bar, "trades": _trade, "macro": _macro}

# Typed rows built by code are checked in place (a few attribute tests instead of a copy);
# anything doubtful goes through the full check above for its exact reason.
_isfinite, _match, _UTC = math.isfinite, SYMBOL.match, dt.timezone.utc


def _aware(ts) -> bool:
    return type(ts) is dt.datetime and (ts.tzinfo is _UTC or ts.utcoffset() is not None)


def _fast_bar(b: Bar) -> bool:
    o, h, low, c, v, source = b.open, b.high, b.low, b.close, b.volume, b.source
    # a sum of finite numbers is finite; one NaN or infinity makes it NaN or infinite
    return (type(o) in _REAL and type(h) in _REAL and type(low) in _REAL and type(c) in _REAL
            and _isfinite(o + h + low + c) and low <= o <= h and low <= c <= h and type(v) is int and v >= 0
            and type(b.symbol) is str and _match(b.symbol) is not None and _aware(b.ts)
            and type(source) is str and 0 < len(source) <= 64)


def _fast_trade(t: Trade) -> bool:
    p, size = t.price, t.size
    return (type(p) in _REAL and type(size) in _REAL and _isfinite(p + size) and p > 0 and size >= 0
            and type(t.symbol) is str and _match(t.symbol) is not None and _aware(t.ts)
            and type(t.trade_id) is str and 0 < len(t.trade_id) <= 64 and (t.side is None or t.side in SIDES)
            and type(t.source) is str and 0 < len(t.source) <= 64)


_REAL = frozenset({float, int})
FAST_CHECKS = {"bars": _fast_bar, "trades": _fast_trade, "macro": lambda row: False}
