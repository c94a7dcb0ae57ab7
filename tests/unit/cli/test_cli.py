"""The CLI end to end on the bootstrap tier, and its handling of bad input."""
import json
import os
import subprocess
import sys

import pytest


def run(*args, cwd, env=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "backbone", *args], capture_output=True, text=True,
                          cwd=cwd, env=clean, timeout=60)


def test_validate_with_no_configuration_runs_on_the_bootstrap_tier(tmp_path):
    fresh = run("validate", "--format", "json", cwd=tmp_path)
    assert fresh.returncode == 1  # the store's schema is not there yet
    checks = {c["name"]: c for c in json.loads(fresh.stdout)["checks"]}
    assert checks["migrations"]["code"] == "migrations_pending"
    assert run("migrate", "apply", cwd=tmp_path).returncode == 0
    proc = run("validate", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["tier"] == "bootstrap"
    assert {c["name"]: c["status"] for c in report["checks"]} == {
        "store": "ok", "cache": "ok", "events": "ok", "migrations": "ok", "smoke": "ok",
        "freshness.bars": "ok", "freshness.trades": "ok", "freshness.macro": "ok",
        "outbox": "ok", "consumer_lag": "ok", "cache_ratios": "ok"}
    assert {c["code"] for c in report["checks"] if c["name"].startswith("freshness.")} == {"never_ingested"}
    assert (tmp_path / ".backbone" / "bootstrap" / "backbone.db").is_file()


def test_unusable_bootstrap_store_fails_the_check(tmp_path):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    proc = run("validate", "--extra", "BACKBONE_BOOTSTRAP_STORE=blocker/store.db", cwd=tmp_path)
    assert proc.returncode == 1
    assert "| store | ❌ down |" in proc.stdout


def test_output_file_is_written_and_stdout_stays_clean(tmp_path):
    run("migrate", "apply", cwd=tmp_path)
    proc = run("validate", "--output", "reports/ready.md", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert "report written to reports/ready.md" in proc.stderr
    assert (tmp_path / "reports" / "ready.md").read_text().startswith("# Backbone readiness")


@pytest.mark.parametrize("args, needle", [
    (("validate", "--outputs", "missing.json"), "--outputs missing.json: file not found"),
    (("validate", "--extra", "REDIS_PORT=abc"), "REDIS_PORT (from --extra): expected an integer"),
    (("validate", "--extra", "NOPE=1"), "--extra NOPE: unknown setting"),
    (("validate", "--timeout", "0"), "greater than 0"),
    (("validate", "--timeout", "nan"), "must be a finite number of seconds greater than 0"),
    (("probe", "--timeout", "inf"), "must be a finite number of seconds greater than 0"),
    (("migrate", "check", "--timeout", "-1"), "greater than 0"),
    (("validate", "--format", "xml"), "invalid choice: 'xml'"),
    (("manifest", "--stack", "dev"), "pulumi CLI is not on PATH"),
])
def test_bad_input_exits_2_with_a_clear_message_and_no_traceback(tmp_path, args, needle):
    proc = run(*args, cwd=tmp_path, env={"PATH": os.path.dirname(sys.executable)})
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_invalid_outputs_file_runs_nothing(tmp_path):
    (tmp_path / "outputs.json").write_text('{"backbone": {"contract_version": 1, "tier": "institutional", '
                                           '"timescale": {"port": true}}}')
    proc = run("validate", "--outputs", "outputs.json", "--output", "r.md", cwd=tmp_path)
    assert proc.returncode == 2 and "timescale.port" in proc.stderr and "boolean" in proc.stderr
    assert not (tmp_path / "r.md").exists()
    assert not (tmp_path / ".backbone").exists()


def test_manifest_redacts_secrets(tmp_path):
    planted = "PLANTED-manifest-secret"
    proc = run("manifest", "--format", "json", "--extra", f"TIMESCALEDB_URL=postgresql://u:{planted}@db/x",
               "--extra", f"REDIS_PASSWORD={planted}", "--extra", "KAFKA_BOOTSTRAP_SERVERS=k:9092", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert planted not in proc.stdout
    manifest = json.loads(proc.stdout)
    assert manifest["timescale"]["host"] == "db" and manifest["timescale"]["credentials"] == "set"


def test_local_commands_without_an_environment_are_usage_errors(tmp_path):
    proc = run("local", "status", "--state-dir", "nowhere", cwd=tmp_path)
    assert proc.returncode == 2 and "run `backbone local up` first" in proc.stderr
