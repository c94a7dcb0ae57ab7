"""`backbone local` + `backbone validate` against real PostgreSQL, Redis and Kafka."""
import json
import os
import stat

from ..conftest import run_backbone


def secrets_of(env):
    """Every secret string of backbone_secrets (each duty's password sits one level deeper)."""
    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        return [value] if isinstance(value, str) else []
    return strings(env["contract"]["backbone_secrets"])


def test_outputs_contract_is_private_and_splits_secrets(local_env):
    outputs = local_env["outputs"]
    assert stat.S_IMODE(os.stat(outputs).st_mode) == 0o600
    public = json.dumps(local_env["contract"]["backbone"])
    for secret in secrets_of(local_env):
        assert len(secret) >= 16
        assert secret not in public


def test_validate_passes_with_all_three_services_ok(local_env):
    proc = run_backbone("validate", "--outputs", str(local_env["outputs"]), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["timescale"] == statuses["redis"] == statuses["kafka"] == "ok"
    assert set(statuses.values()) == {"ok"}
    kafka = next(c for c in report["checks"] if c["name"] == "kafka")
    assert kafka["details"]["brokers"] == [1, 2, 3]
    timescale = next(c for c in report["checks"] if c["name"] == "timescale")
    assert timescale["details"]["server_version"].startswith("15")
    assert all(c["latency_ms"] is not None for c in report["checks"])


def test_status_reports_every_service_running(local_env):
    proc = run_backbone("local", "status", "--state-dir", str(local_env["state_dir"]), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["service"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"timescale", "redis", "kafka-1", "kafka-2", "kafka-3"}
    assert all(r["state"] == "running" for r in rows.values())


def test_wrong_redis_password_is_reported_without_the_password(local_env, tmp_path):
    planted = "PLANTED-wrong-password-7f3a9c"
    for fmt in ("markdown", "json"):
        report_file = tmp_path / f"report.{fmt}"
        proc = run_backbone("validate", "--outputs", str(local_env["outputs"]), "--format", fmt,
                            "--extra", f"REDIS_PASSWORD={planted}", "--output", str(report_file), "--timeout", "3")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        written = report_file.read_text()
        everything = proc.stdout + proc.stderr + written
        assert planted not in everything
        for secret in secrets_of(local_env):
            assert secret not in everything
    report = json.loads((tmp_path / "report.json").read_text())
    redis = next(c for c in report["checks"] if c["name"] == "redis")
    assert redis["status"] == "down" and redis["code"] == "auth_failed"


def test_wrong_timescale_password_is_down_and_redacted(local_env):
    planted = "PLANTED-pg-password-0c1d"
    proc = run_backbone("validate", "--outputs", str(local_env["outputs"]), "--format", "json",
                        "--extra", f"TIMESCALEDB_PASSWORD={planted}")
    assert proc.returncode == 1
    assert planted not in proc.stdout + proc.stderr
    ts = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "timescale")
    assert ts["code"] == "auth_failed"


def test_kafka_stopped_is_reported_down_within_the_timeout(local_env):
    state_dir = str(local_env["state_dir"])
    stopped = run_backbone("local", "stop", "kafka", "--state-dir", state_dir)
    assert stopped.returncode == 0, stopped.stderr
    try:
        # a hang would trip the subprocess timeout; the report says when the probe gave up
        proc = run_backbone("validate", "--outputs", str(local_env["outputs"]), "--timeout", "3", timeout=30)
        assert proc.returncode == 1, proc.stdout
        assert "| kafka | ❌ down |" in proc.stdout and "Kafka at 127.0.0.1:" in proc.stdout
        assert "| timescale | ✅ ok |" in proc.stdout and "| redis | ✅ ok |" in proc.stdout
        as_json = run_backbone("validate", "--outputs", str(local_env["outputs"]), "--timeout", "3",
                               "--format", "json", timeout=30)
        report = json.loads(as_json.stdout)
        kafka = next(c for c in report["checks"] if c["name"] == "kafka")
        assert kafka["status"] == "down" and kafka["latency_ms"] <= (3 + 2) * 1000
    finally:
        restarted = run_backbone("local", "start", "kafka", "--state-dir", state_dir)
        assert restarted.returncode == 0, restarted.stderr
    again = run_backbone("validate", "--outputs", str(local_env["outputs"]))
    assert again.returncode == 0, again.stdout


def test_stop_unknown_service_is_a_usage_error(local_env):
    proc = run_backbone("local", "stop", "zookeeper", "--state-dir", str(local_env["state_dir"]))
    assert proc.returncode == 2
    assert "unknown service 'zookeeper'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_local_up_output_names_no_secret(local_env):
    for secret in secrets_of(local_env):
        assert secret not in local_env["up_output"]
