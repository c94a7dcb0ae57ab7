"""Live drills on the local HA topologies (`backbone local up --ha`): Patroni primary +
synchronous replica, Redis primary + replica + 3 Sentinels, 3 KRaft nodes."""
import json

import pytest

from ..conftest import local_environment, run_backbone


@pytest.fixture(scope="module")
def ha_env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "ha-drills", "--ha")


def drill(env, out, service, target="primary"):
    proc = run_backbone("drill", "run", "--service", service, "--fault", "kill", "--target", target,
                        "--outputs", str(env["outputs"]), "--state-dir", str(env["state_dir"]),
                        "--output-dir", str(out), "--format", "json", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    png = out / result["timeline_png"].split("/")[-1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return proc, result


def test_timescale_primary_killed_in_synchronous_mode_loses_no_acknowledged_write(ha_env, tmp_path):
    proc, result = drill(ha_env, tmp_path, "timescale")
    assert result["member"] in ("pg-1", "pg-2")
    assert result["acked_writes"] > 10
    assert result["acked_lost"] == 0, result["lost_seqs"]
    assert result["rto_s"] is not None, result["notes"]  # the replica was promoted and writes resumed
    assert proc.returncode == 0 and result["rto_met"] and result["rpo_met"]


def test_redis_master_killed_sentinel_promotes_and_losses_are_counted(ha_env, tmp_path):
    proc, result = drill(ha_env, tmp_path, "redis")
    assert result["member"] in ("redis-1", "redis-2")
    assert result["rto_s"] is not None, result["notes"]  # Sentinel promoted the replica
    assert result["acked_writes"] > 10
    # replication is asynchronous: loss is possible, and it is counted rather than hidden
    assert 0 <= result["acked_lost"] <= result["acked_writes"]
    if result["acked_lost"]:
        assert any("asynchronously" in n for n in result["notes"])
    assert proc.returncode == (0 if result["rto_met"] and result["rpo_met"] else 1)


def test_kafka_leader_killed_on_the_ha_topology(ha_env, tmp_path):
    proc, result = drill(ha_env, tmp_path, "kafka", target="leader")
    assert result["acked_lost"] == 0 and result["rto_s"] is not None
    assert proc.returncode == 0
