"""Live drills on the local HA topologies (`backbone local up --ha`): Patroni primary +
synchronous replica, Redis primary + replica + 3 Sentinels, 3 KRaft nodes."""
import json

import pytest

from backbone.local import partition as partition_local
from backbone.drills.faults_local import broker_views
from backbone.local.kafka import node_access
from backbone.drills.workloads import DRILL_TOPIC

from ..conftest import local_environment, run_backbone


@pytest.fixture(scope="module")
def ha_env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "ha-drills", "--ha")


def drill(env, out, service, target="primary", fault="kill"):
    proc = run_backbone("drill", "run", "--service", service, "--fault", fault, "--target", target,
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


def test_timescale_primary_paused_then_resumed_loses_no_acknowledged_write(ha_env, tmp_path):
    # The whole node stops (Patroni, postmaster, backends) past Patroni's ttl, so the replica is
    # promoted; then it resumes believing it still leads. Patroni 3.0.2 (Debian's) re-took the
    # leader key at that moment and ~190 writes the promoted replica had acknowledged were lost.
    proc, result = drill(ha_env, tmp_path, "timescale", fault="pause")
    assert result["acked_writes"] > 10
    assert result["acked_lost"] == 0, result["lost_seqs"]
    assert result["rto_s"] is not None, result["notes"]  # the replica was promoted and writes resumed
    assert not any("healing" in n for n in result["notes"]), result["notes"]  # it rejoined as a standby
    assert result["promise_kept"] and proc.returncode == 0


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


# --- real partitions (nftables on loopback, members told apart by their group ids) -------------

def partition(env, out, service, outputs=None, max_outage="60"):
    target = "leader" if service == "kafka" else "primary"
    out.mkdir(parents=True, exist_ok=True)  # --output-dir must exist (or be under the working directory)
    proc = run_backbone("drill", "run", "--service", service, "--fault", "partition", "--target", target,
                        "--outputs", str(outputs or env["outputs"]), "--state-dir", str(env["state_dir"]),
                        "--output-dir", str(out), "--format", "json", "--max-outage", max_outage, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert any("took over from" in n for n in result["notes"]), result["notes"]  # the partition was real
    assert not partition_local.active(partition_local.table_for(env["state_dir"]))  # healed, nothing left
    assert_cut_proven(env, result)
    return result


def assert_cut_proven(env, result):
    """The report names every port of the member as cut, and while the cut held each peer's
    probe to each of them, and the member's to each of its peers' ports, timed out."""
    p = result["partition"]
    state = json.loads((env["state_dir"] / "state.json").read_text())
    svc = state["services"][result["member"]]
    assigned = {v for k, v in svc.items() if k.endswith("port") and isinstance(v, int)}
    assert assigned <= set(p["cut_ports"]), p  # Patroni's REST API *and* PostgreSQL; broker and controller
    assert p["proven"] and p["probes"], p
    assert all(x["outcome"] in ("timeout", "EPERM") and x["blocked"] for x in p["probes"]), p["probes"]
    for peer, ports in p["peer_ports"].items():
        assert sorted(x["port"] for x in p["probes"] if x["from"] == peer) == p["cut_ports"], p["probes"]
        assert {x["port"] for x in p["probes"] if x["from"] == result["member"] and x["to"] == peer} == set(ports)
    # the same ports served a client all along: the timeouts were the cut's doing
    assert [c["port"] for c in p["client_probes"]] == p["cut_ports"]
    assert any(c["outcome"] == "connected" for c in p["client_probes"]), p["client_probes"]


def lost_times(result) -> list[float]:
    finished = {a["seq"]: a["finished"] for a in result["timeline"]}
    return sorted(finished[s] - result["fault_at_s"] for s in result["lost_seqs"])


def test_timescale_primary_partitioned_from_etcd_and_replica_loses_nothing(ha_env, tmp_path):
    # a stale partition a killed drill left behind is removed before anything else
    state = json.loads((ha_env["state_dir"] / "state.json").read_text())
    gid = partition_local.member_gid(list(state["services"]), "kafka-1")
    partition_local.cut(partition_local.table_for(ha_env["state_dir"]), gid, {1}, {gid + 99}, {2})
    result = partition(ha_env, tmp_path, "timescale")
    assert result["acked_writes"] > 10 and result["acked_lost"] == 0, result["lost_seqs"]
    assert result["rto_s"] is not None  # the replica was promoted and took writes
    # Patroni starts the postmaster in a session of its own, re-parented to init: a cut made
    # from Patroni's process tree left PostgreSQL out, replication kept streaming, and the
    # "isolated" primary acknowledged hundreds of writes. Both members' PostgreSQL are cut now
    p = result["partition"]
    member, peer = result["member"], next(n for n in ("pg-1", "pg-2") if n != result["member"])
    assert state["services"][member]["port"] in p["cut_ports"], p
    assert state["services"][peer]["port"] in p["peer_ports"][peer], p
    # every write the isolated primary acknowledged (as the writer saw which server answered)
    # was read back from the new primary: synchronous replication let none be acknowledged alone
    acks = p["isolated_acks"]
    assert acks["attributed"] == "by the port that answered", acks
    port = state["services"][member]["port"]
    answered = [a["seq"] for a in result["timeline"]
                if a["ok"] and a["server"] == port and a["finished"] >= result["fault_at_s"]]
    assert acks["seqs"] == answered and acks["count"] == len(answered), acks
    assert acks["lost"] == 0 and acks["present"] == acks["count"], acks
    assert not set(answered) & set(result["lost_seqs"])
    report = next(tmp_path.glob("drill-timescale-partition-*.md")).read_text()
    assert f"Cut ports of {member}: " in report and "✅ proven" in report, report
    assert f"read back after the takeover: {acks['count']}, lost: 0." in report, report


def test_kafka_leader_partitioned_loses_no_acknowledged_record(ha_env, tmp_path):
    result = partition(ha_env, tmp_path, "kafka")
    assert result["acked_writes"] > 10 and result["acked_lost"] == 0, result["lost_seqs"]
    assert result["rto_s"] is not None
    # the drill read back only once the healed broker had rejoined: each broker, asked itself
    # (not whichever one librdkafka picked, which was once the stale isolated one), puts it
    # back in the ISR. Reading from its stale view had counted ~170 records as lost
    state = json.loads((ha_env["state_dir"] / "state.json").read_text())
    me = state["services"][result["member"]]["node_id"]
    views = broker_views([s["port"] for s in state["services"].values() if s["kind"] == "kafka"], DRILL_TOPIC,
                         access=node_access(ha_env["state_dir"], state))
    assert len(views) == 3 and all(me in v[(DRILL_TOPIC, 0)][2] for v in views.values()), views


def test_redis_master_partitioned_loses_writes_and_min_replicas_bounds_the_loss(ha_env, tmp_path):
    free = partition(ha_env, tmp_path / "free", "redis")
    # Jepsen's lesson: the isolated master kept acknowledging writes that the failover threw away
    assert free["acked_lost"] > 0 and any("no bound" in n for n in free["notes"])
    assert free["loss_window_s"] > 2.0  # acknowledged, then lost, for longer than the bound below
    doc = json.loads(ha_env["outputs"].read_text())
    doc["backbone"]["redis"] = {**doc["backbone"]["redis"], "min_replicas_to_write": 1, "min_replicas_max_lag_s": 1}
    bounded_outputs = tmp_path / "bounded.json"
    bounded_outputs.write_text(json.dumps(doc))
    bounded = partition(ha_env, tmp_path / "bounded", "redis", bounded_outputs, max_outage="8")
    assert any("min-replicas-to-write 1" in n for n in bounded["notes"])
    # the isolated master stopped acknowledging once its replica had been silent for the lag:
    # whatever was lost was acknowledged within ~lag (+1 s of replica-ack granularity) of the cut
    assert bounded["loss_window_s"] <= 2.5 and all(t >= -0.1 for t in lost_times(bounded)), bounded["loss_window_s"]


def test_a_quarter_of_the_rotation_runs_in_sequence_with_one_report_and_one_figure(ha_env, tmp_path):
    plan = tmp_path / "q1.json"
    made = run_backbone("drill", "plan", "--date", "2027-02-01", "--format", "json", "--output", str(plan),
                        "--outputs", str(ha_env["outputs"]))
    assert made.returncode == 0, made.stderr
    kinds = [(s["service"], s["kind"]) for s in json.loads(plan.read_text())["scenarios"]]
    assert kinds == [("timescale", "failover"), ("redis", "partition"), ("kafka", "backup")]
    proc = run_backbone("drill", "run", "--plan", str(plan), "--outputs", str(ha_env["outputs"]),
                        "--state-dir", str(ha_env["state_dir"]), "--output-dir", str(tmp_path / "out"),
                        "--format", "json", timeout=600)
    report = json.loads(proc.stdout)
    assert [d["kind"] for d in report["drills"]] == ["failover", "partition", "backup"]
    assert all(d["error"] is None for d in report["drills"]), [d["error"] for d in report["drills"]]
    assert report["drills"][0]["figures"]["acked_lost"] == 0  # synchronous Patroni, primary killed
    assert report["drills"][2]["figures"]["verified"]  # the Kafka restore matched
    assert proc.returncode == (0 if report["passed"] else 1)
    pngs = list((tmp_path / "out").glob("drill-rotation-2027-Q1-*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
