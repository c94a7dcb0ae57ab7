"""Deterministic synthetic market data for demos and benchmarks.

`generate(dimension, n, symbols, seed, start)` yields exactly n valid rows, lazily, and the
same arguments give the same rows in the same order on every machine. That is why all the
randomness comes from one `random.Random(seed)` through `random()` alone (its output is
fixed for a seed across platforms and Python versions, unlike `randint` or `choice`), and why
the walks use only + - * / (`gauss` and `exp` go through the platform's libm, whose last bits
may differ). Prices are rounded to cents; rounding never breaks low <= open, close <= high
because it is monotone. Every row carries source "synthetic" so it is never mistaken for
market data. Time only moves forward from `start`, so a run of millions of bars for one
symbol (or of macro events) would pass the year 9999 and stop with an OverflowError.
"""
from __future__ import annotations

import datetime as dt
import heapq
import random
from typing import Iterator

from .rows import Bar, MacroEvent, Trade, dimension as lookup

UTC = dt.timezone.utc
DEFAULT_START = dt.datetime(2024, 1, 2, tzinfo=UTC)
SOURCE = "synthetic"
SESSION = (dt.timedelta(hours=14, minutes=30), dt.timedelta(hours=21))  # US cash session in UTC (winter)
MAX_TRADE_GAP_US = 10_000_000  # mean 5 s per symbol: about a dozen trades per 1-minute candle
# event -> (importance, release time UTC, typical level, step size); released on ~1 day in 4
MACRO_EVENTS = {
    "Initial Jobless Claims": ("medium", dt.timedelta(hours=13, minutes=30), 220.0, 8.0),
    "CPI": ("high", dt.timedelta(hours=13, minutes=30), 3.2, 0.1),
    "Core CPI": ("high", dt.timedelta(hours=13, minutes=30), 3.9, 0.1),
    "NFP": ("high", dt.timedelta(hours=13, minutes=30), 180.0, 40.0),
    "Unemployment Rate": ("high", dt.timedelta(hours=13, minutes=30), 3.8, 0.1),
    "Retail Sales": ("medium", dt.timedelta(hours=13, minutes=30), 0.4, 0.3),
    "PPI": ("medium", dt.timedelta(hours=13, minutes=30), 1.5, 0.2),
    "GDP": ("high", dt.timedelta(hours=13, minutes=30), 2.5, 0.4),
    "ISM Manufacturing PMI": ("medium", dt.timedelta(hours=15), 49.0, 1.0),
    "Consumer Confidence": ("low", dt.timedelta(hours=15), 105.0, 3.0),
    "FOMC Rate Decision": ("high", dt.timedelta(hours=19), 5.25, 0.25),
}


def generate(dimension: str, n: int, symbols: int, seed: int,
             start: dt.datetime | None = None) -> Iterator[Bar | Trade | MacroEvent]:
    """Exactly n valid rows of `dimension` ("bars", "trades" or "macro"); `symbols` is ignored for macro.

    Arguments are checked now, rows are made as they are consumed.
    """
    dim = lookup(dimension)
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    if symbols < 1 and dim.name != "macro":
        raise ValueError(f"symbols must be at least 1, got {symbols}")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start has no time zone; give an aware datetime, e.g. tzinfo=timezone.utc")
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    if dim.name == "bars":
        return _bars(rng, n, tickers(symbols), start)
    if dim.name == "trades":
        return _trades(rng, n, tickers(symbols), start, seed)
    return _macro(rng, n, start)


def tickers(count: int) -> list[str]:
    return [f"SYM{i:03d}" for i in range(count)]


def _noise(rng: random.Random) -> float:
    """Roughly normal, mean 0, sd 1 (Irwin-Hall of 3 uniforms): arithmetic only, see above."""
    return (rng.random() + rng.random() + rng.random() - 1.5) * 2.0


def _walk(rng: random.Random, price: float, anchor: float, sigma: float) -> float:
    # Pulled back towards its anchor, so a long run neither drifts to 0 nor explodes.
    return max(1.0, price + 0.01 * (anchor - price) + price * sigma * _noise(rng))


def _business_days(first: dt.date) -> Iterator[dt.datetime]:
    day = dt.datetime(first.year, first.month, first.day, tzinfo=UTC)
    while True:
        if day.weekday() < 5:
            yield day
        day += dt.timedelta(days=1)


def _bars(rng: random.Random, n: int, names: list[str], start: dt.datetime) -> Iterator[Bar]:
    anchors = [20.0 + 480.0 * rng.random() for _ in names]
    closes = list(anchors)
    volumes = [int(100_000 + 9_900_000 * rng.random()) for _ in names]
    made = 0
    for day in _business_days(start.date()):
        for i, symbol in enumerate(names):
            if made == n:
                return
            o = _walk(rng, closes[i], anchors[i], 0.003)  # the overnight gap
            c = _walk(rng, o, anchors[i], 0.015)
            h = max(o, c) * (1.0 + 0.005 * rng.random())
            low = min(o, c) * (1.0 - 0.005 * rng.random())
            closes[i] = c
            yield Bar(symbol, day, round(o, 2), round(h, 2), round(low, 2), round(c, 2),
                      int(volumes[i] * (0.5 + rng.random())), SOURCE)
            made += 1


def _session_time(t: dt.datetime) -> dt.datetime:
    """`t` if the session is open then, else the next session's open."""
    day = dt.datetime(t.year, t.month, t.day, tzinfo=UTC)
    if day.weekday() < 5 and day + SESSION[0] <= t < day + SESSION[1]:
        return t
    if day.weekday() < 5 and t < day + SESSION[0]:
        return day + SESSION[0]
    return next(_business_days(day.date() + dt.timedelta(days=1))) + SESSION[0]


def _trades(rng: random.Random, n: int, names: list[str], start: dt.datetime, seed: int) -> Iterator[Trade]:
    anchors = [20.0 + 480.0 * rng.random() for _ in names]
    prices = list(anchors)
    first = _session_time(start)
    # One clock per symbol, merged through a heap so rows come out in time order; the index
    # breaks ties, so equal timestamps always come out in the same order.
    clocks = [(_session_time(first + _gap(rng)), i) for i in range(len(names))]
    heapq.heapify(clocks)
    for k in range(n):
        ts, i = clocks[0]
        prices[i] = _walk(rng, prices[i], anchors[i], 0.0005)
        side = "buy" if rng.random() < 0.5 else "sell"
        yield Trade(names[i], ts, f"{seed}-{k}", round(prices[i], 2), float(1 + int(500 * rng.random())),
                    side, SOURCE)
        heapq.heapreplace(clocks, (_session_time(ts + _gap(rng)), i))


def _gap(rng: random.Random) -> dt.timedelta:
    return dt.timedelta(microseconds=1 + int(MAX_TRADE_GAP_US * rng.random()))


def _macro(rng: random.Random, n: int, start: dt.datetime) -> Iterator[MacroEvent]:
    previous = {event: level for event, (_, _, level, _) in MACRO_EVENTS.items()}
    made = 0
    for day in _business_days(start.date()):
        if made == n:  # checked here too: a day may release nothing
            return
        # Sorted by release time then name, so rows come out in time order; each event at
        # most once a day keeps (calendar, event, ts) distinct.
        released = sorted((at, event) for event, (_, at, _, _) in MACRO_EVENTS.items() if rng.random() < 0.25)
        for at, event in released:
            if made == n:
                return
            importance, _, level, step = MACRO_EVENTS[event]
            forecast = previous[event] + step * 0.5 * _noise(rng) + 0.05 * (level - previous[event])
            actual = forecast + step * _noise(rng)
            yield MacroEvent("us", event, day + at, "USD", importance, round(actual, 2), round(forecast, 2),
                             round(previous[event], 2), SOURCE)
            previous[event] = actual
            made += 1
