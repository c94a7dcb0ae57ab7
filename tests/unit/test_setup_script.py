"""scripts/setup.sh's virtualenv step, with a stand-in for .venv/bin/python that records
what pip was asked to install: `python` (make demo) installs only what running backbone
needs, `dev` and `all` the dev extras, each re-run knows what is installed already, and off
a terminal a long step says it is still running."""
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_PIP_CALLS"
if [ -n "${FAKE_PIP_WAIT:-}" ] && [[ "$*" == *"install -e"* ]]; then
  echo "Collecting something-visible"  # pip's own progress, which the heartbeat repeats
  for _ in $(seq 1200); do [ -f "$FAKE_PIP_WAIT" ] && exit 0; sleep 0.1; done
  exit 1
fi
"""


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "scripts").mkdir()
    for script in ("setup.sh", "lib.sh", "constraints/infra.txt"):
        (tmp_path / "scripts" / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "scripts" / script, tmp_path / "scripts" / script)
    os.utime(tmp_path / "scripts" / "constraints" / "infra.txt", (time.time() - 3600,) * 2)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    past = time.time() - 3600  # older than any stamp the script leaves
    os.utime(tmp_path / "pyproject.toml", (past, past))
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def setup(checkout: Path, what: str, **env):
    calls = checkout / "calls.txt"
    calls.write_text("")
    proc = subprocess.run(["bash", "scripts/setup.sh", what], cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, "FAKE_PIP_CALLS": str(calls), **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line for line in calls.read_text().splitlines() if "install -e" in line]


def test_the_demo_installs_only_what_running_backbone_needs_and_the_tests_the_rest(checkout):
    assert setup(checkout, "python") == ["-m pip install -e ."]
    assert setup(checkout, "python") == []             # installed already
    assert setup(checkout, "dev") == ["-m pip install -e .[dev] -c scripts/constraints/infra.txt"]   # make test after make demo
    assert setup(checkout, "python") == []             # the dev install holds what the demo needs
    assert setup(checkout, "dev") == []
    os.utime(checkout / "pyproject.toml")               # the dependencies changed
    assert setup(checkout, "python") == ["-m pip install -e ."]
    assert setup(checkout, "dev") == ["-m pip install -e .[dev] -c scripts/constraints/infra.txt"]


def test_a_long_step_says_it_is_still_running_off_a_terminal(checkout):
    release = checkout / "release"
    proc = subprocess.Popen(["bash", "scripts/setup.sh", "python"], cwd=checkout, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FAKE_PIP_CALLS": str(checkout / "calls.txt"),
                                 "FAKE_PIP_WAIT": str(release), "BACKBONE_PROGRESS_S": "0.2"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen = []
    try:
        while True:  # pip waits for the test to see a heartbeat: nothing here depends on timing
            line = lines.get(timeout=60)
            seen.append(line)
            if "still running" in line:
                break
    finally:
        release.touch()
    assert proc.wait(timeout=60) == 0
    assert seen[0] == "==> installing backbone (what running it needs) into .venv\n", seen
    assert "still running after" in seen[-1] and "Collecting something-visible" in seen[-1], seen
    assert not any("\x1b" in line for line in seen)  # plain lines in a log
