"""The bootstrap store's direct path for batches of columns: a batch whose series' spans hold
no stored row goes straight into the table; a key twice in it, or a stored row in a span,
goes through the staging table and the merge, with the same result as before."""
import datetime as dt
import sqlite3
import subprocess
import sys

import pytest

from backbone.contract import Contract
from backbone.data import IngestRejected, columnar, open_backbone
from backbone.data.rows import dimension
from backbone.data.store_sqlite import SqliteStore

UTC = dt.timezone.utc
HEADER = "symbol,ts,open,high,low,close,volume,source"


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store.db"
    subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply", "--extra", f"BACKBONE_BOOTSTRAP_STORE={path}"],
                   check=True, capture_output=True)
    return path


def lines(days: int, symbols: int, start=dt.datetime(2011, 5, 2, tzinfo=UTC), close=10.5) -> list[str]:
    return [f"S{s},{(start + dt.timedelta(days=d)).isoformat()},10,11,9,{close},{d},t"
            for d in range(days) for s in range(symbols)]


def ingest(store, path, merges):
    contract = Contract.model_validate({"bootstrap": {"store": str(store)}})
    with open_backbone(contract) as bb:
        return bb.ingest("bars", lambda: columnar.FileBatches(path, "bars"), source=str(path), numbered=True)


@pytest.fixture
def merges(monkeypatch):
    calls = []
    merge = SqliteStore._merge

    def counted(self, dim, values, conn):
        calls.append(dim.name)
        return merge(self, dim, values, conn)

    monkeypatch.setattr(SqliteStore, "_merge", counted)
    monkeypatch.setattr(columnar, "BLOCK", 1500)  # about 25 rows a batch: batches meet mid-day
    return calls


def test_a_time_ordered_file_goes_straight_in_and_a_reload_merges(store, tmp_path, merges):
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([HEADER] + lines(30, 7)) + "\n")
    first = ingest(store, path, merges)
    assert (first.inserted, first.updated) == (210, 0) and merges == []
    again = ingest(store, path, merges)
    assert (again.inserted, again.updated) == (0, 0) and len(merges) > 5
    path.write_text("\n".join([HEADER] + lines(30, 7, close=10.75)) + "\n")
    changed = ingest(store, path, merges)
    assert (changed.inserted, changed.updated) == (0, 210)
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*), min(close), max(close) FROM daily_bars").fetchone() == (210, 10.75, 10.75)


def test_a_key_twice_in_a_new_batch_is_one_row_with_the_last_value(store, tmp_path, merges):
    path = tmp_path / "bars.csv"
    rows = lines(2, 3)
    path.write_text("\n".join([HEADER] + rows + [rows[0].replace(",10.5,", ",10.25,")]) + "\n")
    result = ingest(store, path, merges)
    assert (result.received, result.inserted, result.updated) == (7, 6, 0)
    assert merges == []  # the key twice made one row before the direct insert
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT close FROM daily_bars WHERE symbol = 'S0' ORDER BY ts").fetchall() == [(10.25,),
                                                                                                           (10.5,)]


def test_the_probe_judges_each_series_by_its_own_span(store):
    day = lambda n: dt.datetime(2012, 1, 1, tzinfo=UTC) + dt.timedelta(days=n)  # noqa: E731
    s = SqliteStore(store)
    try:
        with s.transaction() as conn:
            conn.executemany("INSERT INTO daily_bars VALUES (?, ?, 1, 1, 1, 1, 1, 't')",
                             [("A", "2012-01-11 00:00:00.000000"), ("B", "2012-01-06 00:00:00.000000")])
            probe = lambda changes: s._probe(dimension("bars"), changes, conn)  # noqa: E731
            assert probe({"A": [1, 0, day(11), day(20)], "B": [1, 0, day(6), day(9)]}) is False
            assert probe({"A": [1, 0, day(11), day(20)], "B": [1, 0, day(5), day(9)]}) is True
            assert probe({"A": [1, 0, day(0), day(10)]}) is True
            assert probe({"C": [1, 0, day(0), day(99)]}) is False
    finally:
        s.close()


def test_bad_rows_in_an_early_batch_then_more_batches(store, tmp_path, merges):
    """A refused row in the first batch: the later batches are still read (and prepared on
    the read-ahead thread); with skip_invalid the valid rows load, without it nothing does."""
    path = tmp_path / "bars.csv"
    rows = lines(30, 7)
    rows[3] = rows[3].replace(",9,", ",12,")  # low above high
    path.write_text("\n".join([HEADER] + rows) + "\n")
    contract = Contract.model_validate({"bootstrap": {"store": str(store)}})
    with open_backbone(contract) as bb:
        with pytest.raises(IngestRejected) as refused:
            bb.ingest("bars", lambda: columnar.FileBatches(path, "bars"), source=str(path), numbered=True)
        assert refused.value.result.rejected == 1 and refused.value.result.received == 210
        loaded = bb.ingest("bars", lambda: columnar.FileBatches(path, "bars"), source=str(path), numbered=True,
                           skip_invalid=True)
    assert (loaded.received, loaded.rejected, loaded.inserted) == (210, 1, 209)
