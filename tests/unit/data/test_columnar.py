"""The columnar file reader (backbone.data.columnar) accepts and refuses exactly the rows the
row path (files.read_records + rows.to_row) does: the same typed values in the same order,
the same refused line numbers and reasons, the same whole-file errors — on generated files of
good and bad cells, regular or not (blank lines, quotes, extra cells), in small blocks so a
file is cut many times and may switch to the row reader half way."""
import gzip
import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backbone.data import columnar
from backbone.data.columnar import FileBatches, rows_to_table
from backbone.data.files import FileFormatError, read_records
from backbone.data.generate import generate
from backbone.data.rows import DIMENSIONS, RowError, to_row

NUMBERS = ["1", "1.5", " 2", "2 ", "1e3", "1E-2", "nan", "inf", "-inf", "-1", "1_0", "abc", "", "0x10", "+3", ".5",
           "5.", "1e400", "-0", "0", "9e18", "9.3e18", "1e19", "10.0", "10.5", "١٢"]
STAMPS = ["2024-01-02T00:00:00Z", "2024-01-02 10:00:00+05:30", "2024-02-30T00:00:00Z", "2024-01-02T00:00:00",
          "2024-01-02", "2024-01-02T24:00:00Z", "2024-01-02T00:00:00.1234567Z", "2024-01-02T00:00:00.5Z",
          "9999-12-31T23:59:59Z", "2024-01-02T00:00:00+0100", "2024-01-02T00:00:00z", "2024-01-02T23:59:60Z",
          "2024-13-02T00:00:00Z", "1999-12-31T23:59:59.999999-23:59", "2024-01-02T00:00Z", "20240102T000000Z",
          "2024-01-02T00:00:00+24:00", "x"]
SYMBOLS = ["AAPL", "ES=F", "^GSPC", "aapl", "", "A" * 33, " A", "EUR/USD", "BRK.B", "A-B_C", "É", "-A"]
TEXTS = ["", "vendor", "x" * 64, "x" * 65, "tab\there", "é", " "]
SIDES = ["buy", "SELL", "Buy", "", "hold", "b"]


def stamp():
    made = st.builds(lambda d, off: d.isoformat(timespec=("seconds", "microseconds")[d.microsecond % 2]) + off,
                     st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1)),
                     st.sampled_from(["Z", "+00:00", "-05:00", "+13:45", ""]))
    return st.one_of(made, st.sampled_from(STAMPS))


def number(good):
    return st.one_of(good, st.sampled_from(NUMBERS))


@st.composite
def bar(draw):
    prices = sorted(draw(st.lists(st.floats(0.01, 1e6, allow_nan=False).map(lambda x: round(x, 2)), min_size=4,
                                  max_size=4)))
    low, o, c, high = prices[0], prices[1], prices[2], prices[3]
    if draw(st.booleans()):
        o, c = c, o
    good = {"symbol": draw(st.sampled_from(["AAPL", "MSFT", "ES=F"])), "ts": draw(stamp()), "open": repr(o),
            "high": repr(high), "low": repr(low), "close": repr(c),
            "volume": str(draw(st.integers(0, 10 ** 12))), "source": draw(st.sampled_from(["v", "", "backbone"]))}
    bad = {"symbol": st.sampled_from(SYMBOLS), "ts": stamp(), "open": number(st.just("1")),
           "high": st.sampled_from(NUMBERS), "low": st.sampled_from(NUMBERS), "close": st.sampled_from(NUMBERS),
           "volume": st.sampled_from(NUMBERS), "source": st.sampled_from(TEXTS)}
    for name in draw(st.lists(st.sampled_from(list(bad)), max_size=2)):
        good[name] = draw(bad[name])
    return good


@st.composite
def trade(draw):
    good = {"symbol": draw(st.sampled_from(["AAPL", "EUR/USD"])), "ts": draw(stamp()),
            "trade_id": str(draw(st.integers(0, 10 ** 6))),
            "price": repr(draw(st.floats(0.01, 1e6, allow_nan=False))), "size": str(draw(st.integers(0, 1000))),
            "side": draw(st.sampled_from(["buy", "sell", ""])), "source": "v"}
    bad = {"symbol": st.sampled_from(SYMBOLS), "ts": stamp(), "trade_id": st.sampled_from(TEXTS),
           "price": st.sampled_from(NUMBERS), "size": st.sampled_from(NUMBERS), "side": st.sampled_from(SIDES),
           "source": st.sampled_from(TEXTS)}
    for name in draw(st.lists(st.sampled_from(list(bad)), max_size=2)):
        good[name] = draw(bad[name])
    return good


def row_path(path, dimension, symbol=None):
    """(valid rows, [(line, reason)]) or the FileFormatError message, the way the row path sees the file."""
    dim, rows, errors = DIMENSIONS[dimension], [], []
    try:
        for line, record in read_records(path, dimension, symbol):
            try:
                rows.append(to_row(dim, record, line))
            except RowError as exc:
                errors.append((exc.position, exc.reason))
    except FileFormatError as exc:
        return str(exc)
    return rows_to_table(dim, rows), errors


def columnar_path(path, dimension, symbol=None):
    tables, errors = [], []
    try:
        for batch in FileBatches(path, dimension, symbol):
            tables.append(batch.table)
            errors += [(e.position, e.reason) for e in batch.errors]
    except FileFormatError as exc:
        return str(exc)
    return pa.concat_tables(tables or [rows_to_table(DIMENSIONS[dimension], [])]), errors


def same(path, dimension, symbol=None):
    expected, got = row_path(path, dimension, symbol), columnar_path(path, dimension, symbol)
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
    else:
        assert got[1] == expected[1]
        assert got[0].equals(expected[0]), (got[0].to_pylist(), expected[0].to_pylist())


def csv_text(records, order, noise):
    lines = [",".join(order)]
    for record in records:
        lines.append(",".join(record[c] for c in order))
    for at, kind in noise:
        at %= len(lines) + 1
        lines.insert(at, {"blank": "", "commas": ",,,", "spaces": "   ", "extra": lines[-1] + ",x",
                          "trailing": lines[-1] + ",", "quoted": '"A",' + ",".join(lines[-1].split(",")[1:]),
                          "short": "A,1"}[kind])
    return "\n".join(lines) + "\n"


NOISE = st.lists(st.tuples(st.integers(1, 50), st.sampled_from(["blank", "commas", "spaces", "extra", "trailing",
                                                                "quoted", "short"])), max_size=2)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=[64, 1 << 23], ids=["small-blocks", "one-block"])
def blocks(request, monkeypatch):
    monkeypatch.setattr(columnar, "BLOCK", request.param)


@SETTINGS
@given(records=st.lists(bar(), min_size=1, max_size=30), noise=NOISE, drop_source=st.booleans(),
       gz=st.booleans(), crlf=st.booleans())
def test_bars_the_columnar_path_accepts_and_refuses_exactly_what_the_row_path_does(tmp_path, blocks, records, noise,
                                                                                   drop_source, gz, crlf):
    order = ["ts", "symbol", "open", "high", "low", "close", "volume"] + ([] if drop_source else ["source"])
    text = csv_text(records, order, noise)
    data = (text.replace("\n", "\r\n") if crlf else text).encode()
    path = tmp_path / ("b.csv.gz" if gz else "b.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    same(path, "bars")


@SETTINGS
@given(records=st.lists(trade(), min_size=1, max_size=30), noise=NOISE, drop_side=st.booleans())
def test_trades_the_columnar_path_accepts_and_refuses_exactly_what_the_row_path_does(tmp_path, blocks, records, noise,
                                                                                     drop_side):
    order = ["symbol", "ts", "trade_id", "price", "size", "source"] + ([] if drop_side else ["side"])
    path = tmp_path / "t.csv"
    path.write_text(csv_text(records, order, noise))
    same(path, "trades")


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
@pytest.mark.parametrize("name", ["x.csv", "x.csv.gz", "x.jsonl"])
def test_generated_files_read_to_the_generated_rows(tmp_path, blocks, dimension, name):
    rows = list(generate(dimension, 500, 3, seed=2))
    dicts = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in
              zip(DIMENSIONS[dimension].columns, (getattr(r, c) for c in DIMENSIONS[dimension].columns))} for r in rows]
    if name.startswith("x.csv"):
        cols = DIMENSIONS[dimension].columns
        text = ",".join(cols) + "\n" + "".join(",".join("" if d[c] is None else str(d[c]) for c in cols) + "\n"
                                               for d in dicts)
    else:
        text = "".join(json.dumps(d) + "\n" for d in dicts)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    table, errors = columnar_path(path, dimension)
    assert errors == [] and table.equals(rows_to_table(DIMENSIONS[dimension], rows))
    same(path, dimension)


VENDOR = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
          "2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700\n"
          "2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500\n"
          "2024-01-04,184.22,183.88,183.43,184.25,183.55,58414500\n"
          "2024-01-05T00:00:00,1,1,1,1,1,1\n")


@pytest.mark.parametrize("text, symbol", [
    (VENDOR, "AAPL"), (VENDOR, None), ("", None), ("\n\n", None), ("symbol,ts,open\nA,1,2\n", None),
    ("\ufeffsymbol,ts,open,high,low,close,volume\nA,2024-01-02T00:00:00Z,1,1,1,1,1\n", None),
    ("symbol,ts,open,high,low,close,volume\nA,2024-01-02T00:00:00Z,1,1,1,1,1\n\xff\n", None),
    ("symbol,ts,open,high,low,close,volume\nA,2024-01-02T00:00:00Z,1,1,1,1,1\nA,2024-01-02T00:00:00Z,1,1,1,1,\x00\n",
     None)])
def test_whole_file_errors_and_layouts_match_the_row_path(tmp_path, blocks, text, symbol):
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape").replace("\xff".encode(), b"\xff"))
    same(path, "bars", symbol)


def test_a_file_named_gz_that_is_not_gzip_and_a_truncated_gzip_match_the_row_path(tmp_path, blocks):
    plain = tmp_path / "p.csv.gz"
    plain.write_text("symbol,ts,open,high,low,close,volume\n")
    same(plain, "bars")
    body = "symbol,ts,open,high,low,close,volume\n" + "A,2024-01-02T00:00:00Z,1,1,1,1,1\n" * 2000
    cut = tmp_path / "c.csv.gz"
    cut.write_bytes(gzip.compress(body.encode())[:-40])
    same(cut, "bars")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 3), st.floats(0, 9)), max_size=30))
def test_last_per_key_keeps_the_last_row_of_each_key_as_the_row_path_does(cells):
    import datetime as dt
    dim = DIMENSIONS["bars"]
    rows = [dim.row(s, dt.datetime(2024, 1, 1 + d, tzinfo=dt.timezone.utc), v, v, v, v, 1, "t") for s, d, v in cells]
    expected = list(dict(zip(map(dim.key_of, rows), rows)).values())
    got = columnar.last_per_key(dim, rows_to_table(dim, rows)).to_pylist()
    key = lambda r: (r["symbol"], r["ts"])  # noqa: E731
    assert sorted(got, key=key) == sorted(rows_to_table(dim, expected).to_pylist(), key=key)
