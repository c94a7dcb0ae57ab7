"""SIGINT / SIGTERM in the middle of `backbone ingest`, for real: the CLI as a process on a
file large enough to still be loading, on both tiers. The run's one transaction rolls back,
the journal says `interrupted` (never `ok`), stderr says why, the exit code is 128 + the
signal, and `validate` does not count the run as a success."""
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from ..conftest import BACKBONE, run_backbone
from ..pg import create_database, drop_database
from .test_data_checks import BAR_HEADER, data_checks_of, outputs_with, pg_dsn

ROWS = 1_500_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    """Daily bars for many symbols: one transaction of 15 batches."""
    path = tmp_path_factory.mktemp("interrupt") / "big.csv"
    with open(path, "w") as f:
        f.write(BAR_HEADER)
        for i in range(ROWS):
            f.write(f"S{i // 2000:04d},{1990 + (i % 2000) // 365:04d}-{1 + (i % 365) // 31:02d}-"
                    f"{1 + (i % 31) % 28:02d}T{i % 24:02d}:00:00Z,10,11,9,10.5,{i}\n")
    return path


def read_position(pid: int, path: Path) -> int | None:
    """How far the process has read `path` (its open file's offset), None while it is not open."""
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            if Path(os.readlink(fd)) == path:
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                return int(next(line.split()[1] for line in info.splitlines() if line.startswith("pos:")))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None


def interrupt_ingest(sig: signal.Signals, path: Path, *args, cwd=None) -> tuple[subprocess.CompletedProcess, int]:
    """Start the ingest, send `sig` once a third of the file is read (some batches are written
    inside the transaction) and before all of it is (so nothing can have committed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    proc = subprocess.Popen([*BACKBONE, "ingest", "--dimension", "bars", "--file", str(path), *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    size = path.stat().st_size
    try:
        while proc.poll() is None:
            position = read_position(proc.pid, path)
            if position is not None and position > size // 3:
                break
        assert proc.poll() is None, proc.communicate()
        assert position < size, "the ingest read the whole file before the signal: make the file larger"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), position


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_bootstrap_interrupted_ingest_writes_nothing_and_is_journaled_interrupted(big_file, tmp_path, sig):
    assert run_backbone("migrate", "apply", cwd=tmp_path).returncode == 0
    done, _ = interrupt_ingest(sig, big_file, cwd=tmp_path)
    store = tmp_path / ".backbone" / "bootstrap" / "backbone.db"
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM daily_bars").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        runs = conn.execute("SELECT status, rows, rows_inserted, rows_updated, error FROM ingest_runs").fetchall()
    assert len(runs) == 1 and runs[0][:1] + runs[0][2:4] == ("interrupted", 0, 0), runs
    assert 0 < runs[0][1] < ROWS and runs[0][4].startswith(f"interrupted by {sig.name} after reading ")
    proc = run_backbone("validate", "--format", "json", cwd=tmp_path)
    bars = data_checks_of(proc)["freshness.bars"]
    assert (bars["status"], bars["code"]) == ("degraded", "last_run_interrupted"), bars
    assert bars["details"]["last_ok_at"] is None and "no successful ingest ever" in bars["message"]
    assert proc.returncode == 0, proc.stdout
    assert done.returncode == 128 + sig, (done.returncode, done.stderr)
    assert f"backbone: ingest stopped by {sig.name} after reading " in done.stderr, done.stderr
    assert "rolled back, nothing written; run " in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_timescale_interrupted_ingest_writes_nothing_and_is_journaled_interrupted(local_env, tmp_path, big_file,
                                                                                  sig):
    name = "interrupt_" + uuid.uuid4().hex[:8]
    create_database(local_env, name)
    try:
        outputs = outputs_with(local_env, tmp_path, database=name)
        assert run_backbone("migrate", "apply", "--outputs", str(outputs)).returncode == 0
        good = tmp_path / "good.csv"
        good.write_text(BAR_HEADER + "OKSYM,2024-01-02T00:00:00Z,10,11,9,10.5,100\n")
        assert run_backbone("ingest", "--dimension", "bars", "--file", str(good), "--outputs", str(outputs)).returncode == 0
        before = data_checks_of(run_backbone("validate", "--outputs", str(outputs), "--format", "json"))
        last_ok_at = before["freshness.bars"]["details"]["last_ok_at"]

        done, _ = interrupt_ingest(sig, big_file, "--outputs", str(outputs))
        with psycopg.connect(pg_dsn(local_env, name), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM daily_bars").fetchone()[0] == 1  # only the good file's row
            status, rows, inserted, updated, error = conn.execute(
                "SELECT status, rows, rows_inserted, rows_updated, error FROM ingest_runs "
                "ORDER BY finished_at DESC LIMIT 1").fetchone()
        assert (status, inserted, updated) == ("interrupted", 0, 0) and 0 < rows < ROWS
        assert error.startswith(f"interrupted by {sig.name} after reading ")
        proc = run_backbone("validate", "--outputs", str(outputs), "--format", "json")
        bars = data_checks_of(proc)["freshness.bars"]
        assert (bars["status"], bars["code"]) == ("degraded", "last_run_interrupted"), bars
        assert bars["details"]["last_ok_at"] == last_ok_at  # the interrupted run is not a success
        assert f"the last ingest of {big_file}, at " in bars["message"]
        assert done.returncode == 128 + sig, (done.returncode, done.stderr)
        assert f"backbone: ingest stopped by {sig.name} after reading " in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    finally:
        drop_database(local_env, name)
