"""`backbone drill backup` end to end on the session's PostgreSQL."""
import json

from ..conftest import run_backbone


def test_backup_drill_cli_restores_and_reports_without_secrets(local_env, tmp_path):
    proc = run_backbone("drill", "backup", "--outputs", str(local_env["outputs"]), "--work-dir", str(tmp_path),
                        "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["passed"] and result["rto_met"] and result["rpo_met"]
    assert "daily_bars" in result["tables"]
    secret = local_env["contract"]["backbone_secrets"]["timescale"]["password"]
    assert secret not in proc.stdout + proc.stderr
