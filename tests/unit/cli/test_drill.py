"""`backbone drill run --simulate` touches no service; bad drill input exits 2."""
import json
import os
import subprocess
import sys


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    return subprocess.run([sys.executable, "-m", "backbone", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


def test_simulated_drill_falls_back_to_bootstrap_for_failed_dimensions(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps([
        {"dimension": "daily_bars", "status": "ok", "rows": 10, "freshness_seconds": 60, "symbols": ["A"]},
        {"dimension": "intraday_trades", "status": "ok", "rows": 99, "freshness_seconds": 5, "symbols": ["A"]},
    ]))
    proc = run("drill", "run", "--simulate", "--results", "results.json", "--fail-dimension", "intraday_trades",
               "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "bootstrap" in json.dumps(out["decision"]).lower()
    assert "intraday_trades" in json.dumps(out)


def test_live_drill_needs_a_service_and_the_institutional_tier(tmp_path):
    proc = run("drill", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "--service is required" in proc.stderr
    proc = run("drill", "run", "--service", "kafka", cwd=tmp_path)
    assert proc.returncode == 2 and "needs the institutional tier" in proc.stderr
    proc = run("drill", "run", "--simulate", cwd=tmp_path)
    assert proc.returncode == 2 and "--results" in proc.stderr
