"""Every command with relative paths, run from a working directory of its own (not the
checkout, not an absolute temporary path): the configuration, the reports and the work
folders, including the drills that hand paths to servers started in other directories."""
import json
import os
from pathlib import Path

from backbone.contract import Contract, merge_outputs

from .conftest import run_backbone
from .drills.test_backup_redis import write_keys


def relative(path: Path, cwd: Path) -> str:
    return os.path.relpath(path, cwd)


def test_redis_backup_drill_with_the_default_relative_work_dir(local_env, tmp_path):
    write_keys(Contract.model_validate(merge_outputs(local_env["contract"])))
    outputs = relative(local_env["outputs"], tmp_path)
    proc = run_backbone("drill", "backup", "--service", "redis", "--outputs", outputs, "--format", "json",
                        "--output", "reports/redis.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "reports" / "redis.json").read_text())
    assert result["passed"], result
    assert Path(result["snapshot_path"]).parent == Path("drills")
    assert (tmp_path / result["snapshot_path"]).is_file()
    assert not list((tmp_path / "drills").glob(".redis-restore-*"))  # the scratch server's folder is gone


def test_timescale_backup_drill_probe_and_manifest_with_relative_paths(local_env, tmp_path):
    outputs = relative(local_env["outputs"], tmp_path)
    drill = run_backbone("drill", "backup", "--outputs", outputs, "--work-dir", "work", "--format", "json",
                         "--output", "drill.json", cwd=tmp_path)
    assert drill.returncode == 0, drill.stderr
    assert json.loads((tmp_path / "drill.json").read_text())["passed"]
    assert list((tmp_path / "work").iterdir())  # the dump went where it was told
    probe = run_backbone("probe", "--outputs", outputs, "--format", "json", "--output", "reports/probe.json",
                         cwd=tmp_path)
    assert probe.returncode in (0, 1), probe.stderr  # whatever the services say: the report is written
    assert json.loads((tmp_path / "reports" / "probe.json").read_text())["checks"]
    manifest = run_backbone("manifest", "--outputs", outputs, "--format", "json", "--output", "reports/m.json",
                            cwd=tmp_path)
    assert manifest.returncode == 0, manifest.stderr
    assert json.loads((tmp_path / "reports" / "m.json").read_text())["timescale"]["port"] > 0


def test_local_status_with_a_relative_state_dir(local_env, tmp_path):
    proc = run_backbone("local", "status", "--state-dir", relative(local_env["state_dir"], tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "redis" in proc.stdout
