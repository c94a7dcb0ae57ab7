"""The pure parts of the ingest jobs: which drop-directory files are ready, how generated
rows are moved to now, and how an ingest in flight gives up at an overdue shutdown."""
import datetime as dt
import threading
from collections import deque

import pytest

from backbone.data.generate import generate
from backbone.serve.ingest import DropDirMissing, IngestInterrupted, candidates, interruptible, sha256_of, time_shift

NOW = dt.datetime(2026, 3, 11, 10, 7, 30, tzinfo=dt.timezone.utc)  # a Wednesday, before the US session


def test_candidates_are_the_ready_regular_files_by_name(tmp_path):
    for name in ("b.csv", "a.jsonl", ".hidden.csv", "c.csv.tmp", "d.csv.part"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in candidates(tmp_path)] == ["a.jsonl", "b.csv"]


def test_a_missing_drop_dir_fails_the_run(tmp_path):
    with pytest.raises(DropDirMissing, match="not found"):
        candidates(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DropDirMissing, match="not a directory"):
        candidates(tmp_path / "file")


def test_sha256_of_streams_the_file(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a" * (3 << 20))
    import hashlib
    assert sha256_of(path) == hashlib.sha256(b"a" * (3 << 20)).hexdigest()


@pytest.mark.parametrize("dimension", ["bars", "trades", "macro"])
def test_generated_rows_end_recent_and_never_in_the_future(dimension):
    rows = list(generate(dimension, 300, 4, seed=7))
    newest = deque(rows, maxlen=1)[0].ts
    assert newest == max(r.ts for r in rows)  # the last row is the newest: one pass finds it
    shift = time_shift(dimension, newest, NOW)
    moved = newest + shift
    assert moved <= NOW and NOW - moved < dt.timedelta(days=1)
    if dimension == "trades":
        assert moved == NOW
    else:  # whole days: a bar stays at midnight, a release at its hour
        assert shift % dt.timedelta(days=1) == dt.timedelta(0)
        assert (moved.hour, moved.minute) == (newest.hour, newest.minute)


def test_a_release_later_today_moves_to_yesterday():
    newest = dt.datetime(2024, 1, 5, 19, 0, tzinfo=dt.timezone.utc)
    moved = newest + time_shift("macro", newest, NOW)
    assert moved == dt.datetime(2026, 3, 10, 19, 0, tzinfo=dt.timezone.utc)


def test_an_ingest_in_flight_gives_up_once_shutdown_is_overdue():
    abort = threading.Event()
    records = interruptible(range(10_000), abort)
    assert [next(records) for _ in range(2000)][-1] == 1999
    abort.set()
    with pytest.raises(IngestInterrupted, match="stopped at shutdown"):
        list(records)
    assert list(interruptible(range(5), threading.Event())) == [0, 1, 2, 3, 4]


def test_a_run_stopped_at_shutdown_is_journaled_interrupted_not_failed(tmp_path):
    """serve's overdue shutdown rolls the ingest in flight back: the journal says
    `interrupted` (degraded freshness), not `failed` (down), and nothing is written."""
    import sqlite3
    import subprocess
    import sys

    from backbone.contract import Contract
    from backbone.data import open_backbone
    store = tmp_path / "backbone.db"
    env_args = ["--extra", f"BACKBONE_BOOTSTRAP_STORE={store}"]
    migrated = subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply", *env_args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    abort = threading.Event()

    def rows():
        for i, row in enumerate(generate("bars", 5000, symbols=5, seed=1)):
            if i == 3000:
                abort.set()  # the shutdown became overdue while the run was reading
            yield row

    with open_backbone(Contract(bootstrap={"store": str(store)})) as bb:
        with pytest.raises(IngestInterrupted):
            bb.ingest("bars", interruptible(rows(), abort), source="drop/bars.csv")
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM daily_bars").fetchone()[0] == 0
        status, error = conn.execute("SELECT status, error FROM ingest_runs").fetchone()
    assert status == "interrupted", (status, error)
    assert error.startswith("stopped at shutdown after reading ") and "nothing written" in error
