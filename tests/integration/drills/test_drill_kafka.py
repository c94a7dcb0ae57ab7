"""Live drill on the real 3-broker KRaft cluster: the partition leader is SIGKILLed while a
producer (acks=all, idempotent) writes; every acknowledged record must be read back."""
import json
import os
from pathlib import Path

from ..conftest import run_backbone


def test_kafka_leader_killed_loses_no_acknowledged_write(local_env, tmp_path):
    out = tmp_path / "drills"
    # no --state-dir: the drill finds the environment beside the outputs file `local up` wrote
    # (run from elsewhere, so the default .backbone/local cannot be what it finds)
    proc = run_backbone("drill", "run", "--service", "kafka", "--fault", "kill", "--target", "leader",
                        "--outputs", str(local_env["outputs"]), "--output-dir", str(out), "--format", "json",
                        timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["service"] == "kafka" and result["member"].startswith("kafka-")
    assert result["acked_writes"] > 20
    assert result["acked_lost"] == 0, result["lost_seqs"]
    assert result["rto_s"] is not None and result["rto_s"] > 0
    assert result["rto_met"] and result["rpo_met"]
    png = out / result["timeline_png"].split("/")[-1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "writes resumed" in proc.stderr  # progress was shown
    # the killed broker is back: the environment is whole again for the tests after this one
    status = json.loads(run_backbone("local", "status", "--state-dir", str(local_env["state_dir"]),
                                     "--format", "json").stdout)
    assert all(r["state"] == "running" for r in status)


def test_partition_without_nftables_is_refused_with_the_reason_and_touches_nothing(local_env, tmp_path):
    # partitions work on the local platform (tests/integration/drills/test_drill_ha.py); without
    # `nft` on PATH the drill says what is missing before writing or signalling anything
    path = ":".join(p for p in os.environ["PATH"].split(":") if not Path(p, "nft").exists())
    proc = run_backbone("drill", "run", "--service", "kafka", "--fault", "partition",
                        "--outputs", str(local_env["outputs"]), "--state-dir", str(local_env["state_dir"]),
                        "--output-dir", str(tmp_path), env={"PATH": path})
    assert proc.returncode == 2, proc.stderr
    assert "partition is not available here" in proc.stderr and "nftables" in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())
