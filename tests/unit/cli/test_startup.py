"""The CLI starts light: registering every command group loads none of the heavy
libraries; a command loads what it needs only when it runs."""
import json
import subprocess
import sys

HEAVY = ("alembic", "sqlalchemy", "matplotlib", "confluent_kafka", "psycopg", "redis", "pydantic", "rich")


def loaded_after(code: str, cwd) -> set[str]:
    probe = (f"import sys\n{code}\n"
             f"import json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_version_and_help_load_no_heavy_library(tmp_path):
    for argv in (["--version"], ["--help"], ["migrate", "--help"], ["drill", "run", "--help"]):
        code = ("from backbone.cli import main\n"
                f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code")
        assert loaded_after(code, tmp_path) == set(), argv


def test_bootstrap_validate_without_drift_never_loads_alembic_or_kafka(tmp_path):
    setup = subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=60)
    assert setup.returncode == 0, setup.stderr
    code = "from backbone.cli import main\nassert main(['validate', '--output', 'report.md']) == 0"
    loaded = loaded_after(code, tmp_path)
    assert not loaded & {"alembic", "sqlalchemy", "matplotlib", "confluent_kafka", "psycopg", "redis"}, loaded
    assert "| migrations | ✅ ok |" in (tmp_path / "report.md").read_text()


def test_drift_loads_alembic_to_name_the_difference(tmp_path):
    import sqlite3
    subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply"], cwd=tmp_path, timeout=60, check=True,
                   capture_output=True)
    with sqlite3.connect(tmp_path / ".backbone" / "bootstrap" / "backbone.db") as conn:
        conn.execute("ALTER TABLE macro_events ADD COLUMN note TEXT")
    code = "from backbone.cli import main\nassert main(['migrate', 'check', '--output', 'check.md']) == 1"
    assert {"alembic", "sqlalchemy"} <= loaded_after(code, tmp_path)
    assert "macro_events.note: column not declared" in (tmp_path / "check.md").read_text()
