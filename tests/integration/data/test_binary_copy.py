"""The columnar path's way into TimescaleDB, on the real server: binary COPY made from whole
columns (backbone.data.pgcopy) gives back exactly the values it was given, and the
per-series conflict probe lets a file in time order go straight into the hypertable."""
import datetime as dt
import json
import math
import uuid

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backbone.contract import Contract, merge_outputs
from backbone.data import columnar, open_backbone, pgcopy
from backbone.data.rows import dimension
from backbone.data.store_timescale import TimescaleStore
from ..pg import url

UTC = dt.timezone.utc
TEXT = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                                    max_size=12))
FLOAT = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
INT = st.one_of(st.none(), st.integers(-2 ** 63, 2 ** 63 - 1))
STAMP = st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
                                          timezones=st.just(UTC)))


@pytest.fixture(scope="module")
def contract(local_env) -> Contract:
    doc = merge_outputs(json.loads(local_env["outputs"].read_text()))
    doc["redis"] = {**doc["redis"], "cache_policy": {"namespace": "emp:cache:test:" + uuid.uuid4().hex[:6]}}
    return Contract.model_validate(doc)


@pytest.fixture(scope="module")
def pg(contract):
    with psycopg.connect(url(contract), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE copied (n int8, a text, b timestamptz, c float8, d int8, e text)")
        yield conn


def same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
    return x == y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(TEXT, STAMP, FLOAT, INT, TEXT), max_size=40), st.integers(1, 7))
def test_binary_copy_gives_back_every_value_it_was_given(pg, rows, chunk):
    table = pa.table({"n": pa.array(range(len(rows)), pa.int64()),
                      "a": pa.array([r[0] for r in rows], pa.string()),
                      "b": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
                      "c": pa.array([r[2] for r in rows], pa.float64()),
                      "d": pa.array([r[3] for r in rows], pa.int64()),
                      "e": pa.array([r[4] for r in rows], pa.string())})
    # several record batches, and slices that do not start at a buffer's beginning
    table = pa.Table.from_batches([b for b in table.to_batches(max_chunksize=chunk)], schema=table.schema)
    pg.execute("TRUNCATE copied")
    with pg.cursor().copy("COPY copied FROM STDIN (FORMAT BINARY)") as copy:
        for part in pgcopy.parts(table):
            copy.write(part)
    got = pg.execute("SELECT a, b, c, d, e FROM copied ORDER BY n").fetchall()
    assert len(got) == len(rows)
    for back, sent in zip(got, rows):
        assert all(same(x, y) for x, y in zip(back, sent)), (back, sent)


def test_a_time_ordered_file_goes_straight_into_the_hypertable(contract, tmp_path, monkeypatch):
    """Batches of a file in time order meet on a timestamp (one batch ends part-way through a
    day's symbols, the next begins with the rest): the probe looks at each series' own span,
    so no batch takes the staging table and the merge."""
    prefix = "C" + uuid.uuid4().hex[:5].upper()
    start = dt.datetime(2011, 5, 2, tzinfo=UTC)
    lines = ["symbol,ts,open,high,low,close,volume,source"]
    for day in range(30):
        for s in range(7):
            lines.append(f"{prefix}{s},{(start + dt.timedelta(days=day)).isoformat()},10,11,9,10.5,{day},t")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(columnar, "BLOCK", 1500)  # about 25 rows a batch: batches meet mid-day
    targets = []
    copy = TimescaleStore._copy_binary

    def recorded(pg, table, cols, parts):  # the real COPY, its target written down
        targets.append(table.as_string(pg))
        copy(pg, table, cols, parts)

    monkeypatch.setattr(TimescaleStore, "_copy_binary", staticmethod(recorded))
    with open_backbone(contract) as bb:
        result = bb.ingest("bars", lambda: columnar.FileBatches(path, "bars"), source=str(path), numbered=True)
    assert (result.inserted, result.updated, result.rejected) == (210, 0, 0)
    assert len(targets) > 5 and set(targets) == {'"daily_bars"'}, targets
    # and a second load of the same file is all conflicts: every batch merges, nothing changes
    targets.clear()
    with open_backbone(contract) as bb:
        again = bb.ingest("bars", lambda: columnar.FileBatches(path, "bars"), source=str(path), numbered=True)
    assert (again.inserted, again.updated) == (0, 0)
    assert '"backbone_stage_daily_bars"' in targets


def test_the_probe_judges_each_series_by_its_own_span(contract):
    prefix = "P" + uuid.uuid4().hex[:5].upper()
    a, b = f"{prefix}A", f"{prefix}B"
    day = lambda n: dt.datetime(2012, 1, 1, tzinfo=UTC) + dt.timedelta(days=n)  # noqa: E731
    store = TimescaleStore(contract)
    try:
        with store.connection() as pg, pg.transaction(force_rollback=True):  # nothing stays
            pg.execute("INSERT INTO daily_bars SELECT s, d, 1, 1, 1, 1, 1, 't' FROM (VALUES (%s, %s), (%s, %s)) v(s, d)",
                       (a, day(10), b, day(5)))
            probe = lambda changes: store._probe(pg, dimension("bars"), changes)  # noqa: E731
            # the batch's whole span [6, 20] holds both stored rows; neither series' own span does
            assert probe({a: [1, 0, day(11), day(20)], b: [1, 0, day(6), day(9)]}) is False
            assert probe({a: [1, 0, day(11), day(20)], b: [1, 0, day(5), day(9)]}) is True  # B's own row
            assert probe({a: [1, 0, day(0), day(10)]}) is True
    finally:
        store.close()
