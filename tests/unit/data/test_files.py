"""Ingest file readers: every format round-trips every dimension, the vendor daily-bar layout,
file-level errors (named, with the line where there is one, never echoing values), line
numbering, and streaming (the first record comes before the file is read, memory stays flat).
"""
import gzip
import json
import tracemalloc
from dataclasses import asdict

import pytest

from backbone.data import files
from backbone.data.files import FileFormatError, read_records, sniff_layout
from backbone.data.generate import generate
from backbone.data.rows import DIMENSIONS, to_row

FORMATS = ["x.csv", "x.csv.gz", "x.jsonl", "x.jsonl.gz", "x.ndjson", "x.json"]
BARS_HEADER = "symbol,ts,open,high,low,close,volume,source\n"


def write(path, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def as_text(value):
    return "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)


def render(name: str, rows) -> str:
    dicts = [asdict(r) for r in rows]
    if ".csv" in name:
        header = list(dicts[0])
        return ",".join(header) + "\n" + "".join(",".join(as_text(d[c]) for c in header) + "\n" for d in dicts)
    return "".join(json.dumps({k: as_text(v) if k == "ts" else v for k, v in d.items()}) + "\n" for d in dicts)


def rows_of(path, dimension, symbol=None):
    dim = DIMENSIONS[dimension]
    return [to_row(dim, record, line) for line, record in read_records(path, dimension, symbol)]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("dimension", list(DIMENSIONS))
def test_every_format_round_trips_every_dimension(tmp_path, name, dimension):
    rows = list(generate(dimension, 40, 3, seed=5))
    path = write(tmp_path / name, render(name, rows))
    assert rows_of(path, dimension) == rows
    first = 2 if ".csv" in name else 1
    assert [line for line, _ in read_records(path, dimension)] == list(range(first, first + 40))


def test_csv_values_are_passed_through_as_strings_and_headers_are_case_insensitive(tmp_path):
    path = write(tmp_path / "b.csv", " Symbol ,TS,OPEN,High,low,Close,Volume\nAAPL,2024-01-02T00:00:00Z,1,2,0.5,1.5,10\n")
    assert list(read_records(path, "bars")) == [(2, {"symbol": "AAPL", "ts": "2024-01-02T00:00:00Z", "open": "1",
                                                     "high": "2", "low": "0.5", "close": "1.5", "volume": "10"})]
    assert rows_of(path, "bars")[0].source == "backbone"  # source is optional


def test_symbol_argument_fills_a_missing_symbol_column(tmp_path):
    csv_path = write(tmp_path / "t.csv", "ts,trade_id,price,size\n2024-01-02T14:30:00Z,1,10.5,3\n")
    json_path = write(tmp_path / "t.jsonl", '{"ts": "2024-01-02T14:30:00Z", "trade_id": "1", "price": 10.5, "size": 3}\n')
    for path in (csv_path, json_path):
        (trade,) = rows_of(path, "trades", symbol="ES=F")
        assert (trade.symbol, trade.price, trade.side) == ("ES=F", 10.5, None)
    with pytest.raises(FileFormatError, match="missing required column.* symbol"):
        list(read_records(csv_path, "trades"))
    with pytest.raises(ValueError, match="symbol"):
        read_records(csv_path, "macro", symbol="X")


VENDOR = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
          "2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700\n"
          "2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500\n")


@pytest.mark.parametrize("name", ["aapl.csv", "aapl.csv.gz"])
def test_vendor_daily_bar_layout_with_a_symbol(tmp_path, name):
    path = write(tmp_path / name, VENDOR)
    assert sniff_layout(VENDOR.splitlines()[0].split(","), "bars") == "vendor"
    assert next(read_records(path, "bars", symbol="AAPL")) == (2, {
        "ts": "2024-01-02T00:00:00+00:00", "open": "187.15", "high": "188.44", "low": "183.89",
        "close": "185.64", "volume": "82488700", "symbol": "AAPL"})
    bars = rows_of(path, "bars", symbol="AAPL")
    assert [(b.symbol, b.ts.isoformat(), b.close, b.volume) for b in bars] == [
        ("AAPL", "2024-01-02T00:00:00+00:00", 185.64, 82488700),
        ("AAPL", "2024-01-03T00:00:00+00:00", 184.25, 58414500)]


def test_vendor_layout_without_a_symbol_is_refused(tmp_path):
    path = write(tmp_path / "aapl.csv", VENDOR)
    with pytest.raises(FileFormatError, match=r"aapl\.csv.*vendor.*--symbol"):
        next(read_records(path, "bars"))


def test_missing_columns_are_named_without_values(tmp_path):
    path = write(tmp_path / "b.csv", "symbol,ts,open,extra\nSECRET,2024-01-02T00:00:00Z,1,2\n")
    with pytest.raises(FileFormatError) as caught:
        list(read_records(path, "bars"))
    message = str(caught.value)
    assert str(path) in message
    assert "missing required column(s) high, low, close, volume" in message
    assert "unknown column(s) 'extra'" in message
    assert "SECRET" not in message


def test_duplicate_columns_and_empty_files_are_refused(tmp_path):
    with pytest.raises(FileFormatError, match="duplicate column.*'ts'"):
        list(read_records(write(tmp_path / "d.csv", BARS_HEADER.strip() + ",TS\n"), "bars"))
    with pytest.raises(FileFormatError, match="empty file"):
        list(read_records(write(tmp_path / "e.csv", "\n\n"), "bars"))
    assert list(read_records(write(tmp_path / "e.jsonl", "\n"), "bars")) == []


def test_extra_cells_reach_validation_and_trailing_commas_do_not(tmp_path):
    path = write(tmp_path / "b.csv", BARS_HEADER + "A,2024-01-02T00:00:00Z,1,1,1,1,1,,\n"
                                                   "A,2024-01-03T00:00:00Z,1,1,1,1,1,x,oops\n")
    (_, first), (_, second) = read_records(path, "bars")
    assert "extra field 9" not in first and second["extra field 9"] == "oops"


def test_line_numbers_count_blank_lines_and_the_header(tmp_path):
    row = "A,2024-01-02T00:00:00Z,1,1,1,1,1,s"
    spanning = 'A,2024-01-04T00:00:00Z,1,1,1,1,1,"two\nlines"\n'
    csv_path = write(tmp_path / "b.csv", BARS_HEADER + "\n" + row + "\r\n\r\n  \n" + row + "\n" + spanning + row)
    records = list(read_records(csv_path, "bars"))
    assert [line for line, _ in records] == [3, 6, 7, 9]  # a record is numbered by its first line
    assert records[2][1]["source"] == "two\nlines"
    obj = json.dumps({"symbol": "A"})
    json_path = write(tmp_path / "b.jsonl", f"\n{obj}\n\n \n{obj}\n{obj}")
    assert [line for line, _ in read_records(json_path, "bars")] == [2, 5, 6]


def test_bad_json_names_its_line_after_the_good_lines_were_yielded(tmp_path):
    path = write(tmp_path / "b.jsonl", '{"symbol": "A"}\n\n{"symbol": "SECRET",}\n{"symbol": "B"}\n')
    records = read_records(path, "bars")
    assert next(records) == (1, {"symbol": "A"})
    with pytest.raises(FileFormatError, match=r"b\.jsonl: line 3 is not valid JSON") as caught:
        next(records)
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize("line, kind", [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "a number or literal")])
def test_a_json_line_must_be_an_object(tmp_path, line, kind):
    path = write(tmp_path / "b.ndjson", '{"symbol": "A"}\n' + line + "\n")
    with pytest.raises(FileFormatError, match=f"line 2 is {kind}.*not a JSON object"):
        list(read_records(path, "bars"))


@pytest.mark.parametrize("name", ["b.csv", "b.jsonl.gz"])
def test_undecodable_utf8_names_its_line(tmp_path, name):
    good = BARS_HEADER if name.endswith("csv") else '{"symbol": "A"}\n'
    path = write(tmp_path / name, good.encode() + b"\n" + b'{"symbol": "caf\xe9"}\n')
    with pytest.raises(FileFormatError, match="line 3 is not valid UTF-8"):
        list(read_records(path, "bars"))


def test_a_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    path = write(tmp_path / "b.csv", "\ufeff" + BARS_HEADER + "A,2024-01-02T00:00:00Z,1,1,1,1,1,s\n")
    assert rows_of(path, "bars")[0].symbol == "A"


def test_gzip_by_suffix_and_by_magic_bytes(tmp_path):
    text = '{"symbol": "A"}\n'
    disguised = tmp_path / "b.jsonl"
    disguised.write_bytes(gzip.compress(text.encode()))
    assert list(read_records(disguised, "bars")) == [(1, {"symbol": "A"})]
    (tmp_path / "plain.jsonl.gz").write_text(text)
    with pytest.raises(FileFormatError, match=r"plain\.jsonl\.gz: named \.gz but is not gzip"):
        list(read_records(tmp_path / "plain.jsonl.gz", "bars"))
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress((BARS_HEADER + "A,2024-01-02T00:00:00Z,1,1,1,1,1,s\n" * 5000).encode())[:-100])
    with pytest.raises(FileFormatError, match=r"cut\.csv\.gz: gzip data is truncated or corrupt after line \d+"):
        list(read_records(truncated, "bars"))


def test_unknown_suffix_is_refused_at_the_call(tmp_path):
    with pytest.raises(FileFormatError, match=r"b\.parquet: unknown file type"):
        read_records(tmp_path / "b.parquet", "bars")
    with pytest.raises(ValueError, match="unknown dimension"):
        read_records(tmp_path / "b.csv", "quotes")


def test_an_overlong_line_is_refused_without_being_held(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_LINE", 1000)
    path = write(tmp_path / "b.jsonl", '{"symbol": "A"}\n' + "x" * 5000)
    with pytest.raises(FileFormatError, match="line 2 is longer than 1000 bytes"):
        list(read_records(path, "bars"))


BIG_LINES = 200_000


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    # Generated rows, not one repeated row, so the gzip copy is not trivially small.
    body = (BARS_HEADER + "".join(f"{b.symbol},{b.ts.isoformat()},{b.open},{b.high},{b.low},{b.close},{b.volume},"
                                  f"{b.source}\n" for b in generate("bars", BIG_LINES, 50, seed=1))).encode()
    (folder / "big.csv").write_bytes(body)
    (folder / "big.csv.gz").write_bytes(gzip.compress(body, compresslevel=1))
    return folder


@pytest.mark.parametrize("name", ["big.csv", "big.csv.gz"])
def test_the_first_record_comes_before_the_file_is_read(big_files, monkeypatch, name):
    opened = []

    def spy_open(*args, **kwargs):
        opened.append(open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(files, "open", spy_open, raising=False)
    records = read_records(big_files / name, "bars")
    assert opened == []  # nothing is opened until the first record is asked for
    assert next(records)[0] == 2
    size = (big_files / name).stat().st_size
    assert opened[0].raw.tell() < min(256 * 1024, size // 10)
    records.close()
    assert opened[0].closed


def test_memory_stays_flat_over_a_large_file(big_files):
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_records(big_files / "big.csv.gz", "bars"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == BIG_LINES
    assert peak < 1024 * 1024, f"peak {peak} bytes for a {(big_files / 'big.csv').stat().st_size}-byte file"

