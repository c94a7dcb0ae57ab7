"""Progress lines: at most one per interval of an injected clock (never timed), totals that
are estimates said as "about" and never passed, plain lines when stderr is not a terminal."""
import io
import os
import subprocess
import sys

from backbone import progress
from backbone.progress import Meter, Throttle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_allows_one_line_per_interval():
    clock = Clock()
    throttle = Throttle(5.0, clock)
    seen = []
    for _ in range(60):  # 30 s in half-second steps
        clock.now += 0.5
        seen.append(throttle.due())
    assert sum(seen) == 6
    assert [i for i, due in enumerate(seen) if due] == [9, 19, 29, 39, 49, 59]


def test_a_meter_says_at_most_one_line_per_interval_and_a_final_one():
    clock, lines = Clock(), []
    meter = Meter("copy daily_bars", 1000, lines.append, estimate=True, every=5.0, clock=clock)
    for _ in range(100):
        clock.now += 0.1
        meter.add(10)
    assert lines == ["copy daily_bars: 500/about 1,000 rows (50%), 100 rows/s, about 5 s left",
                     "copy daily_bars: 1,000/about 1,000 rows (100%), 100 rows/s"]
    meter.done()
    assert lines[-1] == "copy daily_bars: 1,000 rows in 10.0 s, 100 rows/s"


def test_done_never_passes_an_estimated_total():
    clock, lines = Clock(), []
    meter = Meter("copy daily_bars", 220_605, lines.append, estimate=True, every=0, clock=clock)
    for _ in range(23):
        clock.now += 1
        meter.add(10_000)
    clock.now += 1
    meter.add(-1519)  # 228,481 rows: written while the copy ran
    def number(text: str) -> int:
        return int(text.replace(",", ""))
    for line in lines:
        if "/about " in line:
            count, total = line.split(": ", 1)[1].split(" rows")[0].split("/about ")
            assert number(count) <= number(total)
        assert "%" not in line or int(line.split("(")[1].split("%")[0]) <= 100
    assert lines[-1].startswith("copy daily_bars: 228,481 rows (more than the about 220,605 counted at the start)")
    assert not any("228,481/" in line for line in lines)


def test_the_interval_is_a_second_on_a_terminal_and_longer_off_one(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.delenv("BACKBONE_PROGRESS_S", raising=False)
    assert progress.every_s(Tty()) == 1.0
    assert progress.every_s(io.StringIO()) == 5.0
    monkeypatch.setenv("BACKBONE_PROGRESS_S", "30")
    assert progress.every_s(io.StringIO()) == 30.0
    monkeypatch.setenv("BACKBONE_PROGRESS_S", "soon")
    assert progress.every_s(io.StringIO()) == 5.0


def test_ingest_off_a_terminal_prints_plain_progress_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    env["BACKBONE_PROGRESS_S"] = "0"  # every batch: the lines, not their pace, are under test

    def run(*args):
        return subprocess.run([sys.executable, "-m", "backbone", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)
    assert run("migrate", "apply").returncode == 0
    proc = run("ingest", "--dimension", "bars", "--generate", "30000", "--symbols", "3")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ingest: ")]
    assert lines, proc.stderr
    assert all("/30,000 rows (" in line and "\x1b" not in line for line in lines)
