"""Where reports may be written: into an existing folder, or a folder created under the
working directory; a missing folder anywhere else is bad input (exit 2) and nothing is
created there."""
import os
import subprocess
import sys

import pytest


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    return subprocess.run([sys.executable, "-m", "backbone", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_a_missing_folder_outside_the_working_directory_is_bad_input(work, where):
    missing = work.parent / "elsewhere" / "deeper"
    target = str(missing / "plan.md") if where == "absolute" else "../elsewhere/deeper/plan.md"
    proc = run("drill", "plan", "--date", "2026-02-01", "--output", target, cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "the folder" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (work.parent / "elsewhere").exists()


def test_a_folder_under_the_working_directory_is_created(work):
    proc = run("drill", "plan", "--date", "2026-02-01", "--output", "reports/q1/plan.md", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "reports" / "q1" / "plan.md").read_text().startswith("#")


def test_an_existing_folder_anywhere_is_written_to(work):
    there = work.parent / "existing"
    there.mkdir()
    proc = run("drill", "plan", "--date", "2026-02-01", "--output", str(there / "plan.md"), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (there / "plan.md").is_file()


def test_a_file_in_the_way_is_bad_input(work):
    (work / "reports").write_text("a file, not a folder")
    proc = run("drill", "plan", "--date", "2026-02-01", "--output", "reports/plan.md", cwd=work)
    assert proc.returncode == 2 and "reports is not a folder" in proc.stderr


def test_a_long_command_refuses_before_it_starts(work):
    """The backup drill checks its folders before it touches a service (none is configured here)."""
    proc = run("drill", "backup", "--extra", "BACKBONE_TIER=institutional", "--extra", "TIMESCALEDB_HOST=127.0.0.1",
               "--extra", "TIMESCALEDB_PORT=9", "--work-dir", str(work.parent / "nowhere" / "x"), cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "--work-dir" in proc.stderr and "does not exist" in proc.stderr
    assert not (work.parent / "nowhere").exists()


def test_an_option_naming_the_reports_own_folder_makes_it_where_its_parent_exists(work, monkeypatch):
    """`--drill-report DIR` / `--output-dir DIR`: DIR itself is made, as `mkdir` would, but
    never its missing parents."""
    from backbone.cli.common import folder
    from backbone.errors import ConfigError
    monkeypatch.chdir(work)
    own = work.parent / "drill-report"
    assert folder(own, "--drill-report", own=True) == own and own.is_dir()
    with pytest.raises(ConfigError, match="its parent .* does not exist"):
        folder(work.parent / "missing" / "report", "--drill-report", own=True)
    assert not (work.parent / "missing").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        folder(work.parent / "plain", "--output")  # a report file's folder: only under the working directory
