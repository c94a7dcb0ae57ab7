"""Synthetic data: deterministic (pinned digests catch a change of machine or of algorithm),
exactly n rows, all valid, unique keys, and shaped like the market (bars per business day,
several trades per symbol per minute, macro releases in time order)."""
import collections
import datetime as dt
import hashlib
import itertools
import statistics

import pytest

from backbone.data.generate import generate
from backbone.data.rows import DIMENSIONS, SYMBOL, to_row

UTC = dt.timezone.utc

# The rows for these arguments, pinned: a different digest means the data changed, on this
# machine or in the code. Update only on purpose.
PINNED = {
    "bars": "744a451bb774fe89959b83e3b9b72a327d3bda235f7c561f7955045ec396354a",
    "trades": "4232b16126dbb9aa0613cd3e986daffa53b38ecf6dc49bff7224ea91d8afa6ea",
    "macro": "523aac16824a5d1c6eeaa60b0ca20dc9e3d49ae1ea91bfee7910585384a11287",
}


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
def test_same_arguments_same_rows(dimension):
    rows = list(generate(dimension, 300, 4, 2024))
    assert rows == list(generate(dimension, 300, 4, 2024))
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == PINNED[dimension]
    assert rows != list(generate(dimension, 300, 4, 2025))
    # a shorter run is a prefix of a longer one
    assert list(generate(dimension, 120, 4, 2024)) == rows[:120]


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
@pytest.mark.parametrize("n", [0, 1, 7, 2000])
def test_exactly_n_valid_rows_with_unique_keys(dimension, n):
    dim = DIMENSIONS[dimension]
    rows = list(generate(dimension, n, 5, seed=3))
    assert len(rows) == n
    assert all(isinstance(r, dim.row) for r in rows)
    assert [to_row(dim, r, i) for i, r in enumerate(rows)] == rows
    assert len({dim.key_of(r) for r in rows}) == n


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
def test_rows_are_made_lazily(dimension):
    first = list(itertools.islice(generate(dimension, 10**12, 3, seed=1), 5))
    assert first == list(generate(dimension, 5, 3, seed=1))


def test_bars_one_per_symbol_per_business_day_in_day_then_symbol_order():
    bars = list(generate("bars", 12 * 30, 12, seed=9))
    symbols = sorted({b.symbol for b in bars})
    assert len(symbols) == 12 and all(SYMBOL.match(s) for s in symbols)
    days = sorted({b.ts for b in bars})
    assert len(days) == 30 and days[0] == dt.datetime(2024, 1, 2, tzinfo=UTC)
    assert all(d.weekday() < 5 and d.time() == dt.time(0) for d in days)
    assert [(b.ts, b.symbol) for b in bars] == [(d, s) for d in days for s in symbols]
    for b in bars:
        assert b.high >= max(b.open, b.close) >= min(b.open, b.close) >= b.low > 0
        assert isinstance(b.volume, int) and b.volume > 0


def test_a_long_bar_series_stays_positive_and_bounded():
    closes = [b.close for b in generate("bars", 20_000, 1, seed=11)]
    assert 1.0 <= min(closes) and max(closes) < 10_000


def test_trades_interleave_symbols_in_time_order_with_several_per_minute():
    trades = list(generate("trades", 20_000, 5, seed=4))
    assert [t.ts for t in trades] == sorted(t.ts for t in trades)
    assert {t.symbol for t in trades} == {f"SYM00{i}" for i in range(5)}
    assert {t.side for t in trades} == {"buy", "sell"}
    assert len({t.trade_id for t in trades}) == len(trades)
    for symbol in {t.symbol for t in trades}:
        stamps = [t.ts for t in trades if t.symbol == symbol]
        assert all(a < b for a, b in zip(stamps, stamps[1:]))
    per_minute = collections.Counter((t.symbol, t.ts.replace(second=0, microsecond=0)) for t in trades)
    assert statistics.median(per_minute.values()) >= 5
    assert all(t.ts.weekday() < 5 and dt.time(14, 30) <= t.ts.time() < dt.time(21) for t in trades)
    assert all(t.price > 0 and t.size >= 1 for t in trades)


def test_trades_roll_over_to_the_next_business_day():
    trades = list(generate("trades", 30_000, 1, seed=4, start=dt.datetime(2024, 1, 5, 20, 0, tzinfo=UTC)))
    assert trades[0].ts >= dt.datetime(2024, 1, 5, 20, 0, tzinfo=UTC)
    assert {t.ts.date() for t in trades} >= {dt.date(2024, 1, 5), dt.date(2024, 1, 8)}  # Friday, then Monday


def test_macro_releases_in_time_order():
    events = list(generate("macro", 500, 0, seed=2))
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert {e.calendar for e in events} == {"us"} and {e.currency for e in events} == {"USD"}
    assert {"CPI", "NFP", "GDP"} <= {e.event for e in events}
    assert {e.importance for e in events} <= {"low", "medium", "high"}
    assert all(isinstance(v, float) for e in events for v in (e.actual, e.forecast, e.previous))


def test_start_is_honoured_and_checked():
    start = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    first = next(generate("bars", 1, 1, seed=0, start=start))
    assert first.ts == dt.datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        generate("bars", 1, 1, seed=0, start=dt.datetime(2024, 3, 1))
    with pytest.raises(ValueError, match="n must be"):
        generate("trades", -1, 1, seed=0)
    with pytest.raises(ValueError, match="symbols must be"):
        generate("bars", 1, 0, seed=0)
    with pytest.raises(ValueError, match="unknown dimension"):
        generate("quotes", 1, 1, seed=0)
