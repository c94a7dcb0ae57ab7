"""`backbone local up --ha` against the real services: Patroni (2 members on etcd) for
Timescale, Redis primary + replica with 3 Sentinels, a 3-node KRaft cluster.

Tests run in file order: validation first, then the failovers (each brings the killed node
back with `local start`), then `local down`, which must leave nothing behind.
Failover times are measured (kill -> first successful write) and printed, never asserted:
only the bound is, so a slow CI machine fails with a clear message instead of flaking.
"""
import json
import os
import signal
import time

import psycopg
import pytest
import redis

from backbone.clients.redis import redis_client
from backbone.contract import Contract, merge_outputs
from backbone.local import patroni, sentinel
from backbone.local.binaries import SETUP_HINT, find_binaries

from ..conftest import run_backbone
from ..pg import url

SENTINEL_FAILOVER_BOUND_S = 30
KEY = "emp:cache:ha:drill"  # in the application's namespace: its ACL user writes nowhere else
PATRONI_FAILOVER_BOUND_S = 60  # ttl 20 s + loop_wait 2 s, with room for a slow 2-core machine


@pytest.fixture(scope="module")
def ha_env(tmp_path_factory):
    missing = find_binaries().missing(["timescale", "redis", "kafka", "patroni", "etcd", "sentinel"])
    if missing:
        reason = f"service binaries missing ({', '.join(missing)}); {SETUP_HINT}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    state_dir = tmp_path_factory.mktemp("ha") / "env"
    started = time.monotonic()
    up = run_backbone("local", "up", "--ha", "--state-dir", str(state_dir), timeout=300)
    took = time.monotonic() - started
    if up.returncode != 0:
        run_backbone("local", "down", "--state-dir", str(state_dir))
        pytest.fail(f"backbone local up --ha failed (exit {up.returncode}):\n{up.stderr}")
    print(f"\nlocal up --ha took {took:.1f} s")
    outputs = state_dir / "outputs.json"
    yield {"state_dir": state_dir, "outputs": outputs,
           "contract": Contract.model_validate(merge_outputs(json.loads(outputs.read_text())))}
    run_backbone("local", "down", "--state-dir", str(state_dir))  # a no-op after test_down_leaves_nothing


def state_of(env):
    return json.loads((env["state_dir"] / "state.json").read_text())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def validate(env):
    result = run_backbone("validate", "--outputs", str(env["outputs"]), "--format", "json", timeout=120)
    report = json.loads(result.stdout)
    return result.returncode, {c["name"]: c for c in report["checks"]}, result


def test_validate_sees_the_ha_topologies(ha_env):
    code, checks, result = validate(ha_env)
    assert code == 0, result.stdout + result.stderr
    ts = checks["timescale"]["details"]
    assert ts["role"] == "primary"
    assert [r["state"] for r in ts["replicas"]] == ["streaming"]
    assert ts["replicas"][0]["sync_state"] == "sync"  # synchronous_mode: the replica is the sync standby
    rd = checks["redis"]["details"]
    assert rd["mode"] == "sentinel" and rd["role"] == "master" and rd["connected_replicas"] == 1
    assert len(rd["sentinels"]) == 3
    assert len({s["master"] for s in rd["sentinels"]}) == 1
    assert all(s["quorum"] for s in rd["sentinels"])
    assert checks["kafka"]["details"]["brokers"] == [1, 2, 3]


def test_contract_describes_both_members_and_all_sentinels(ha_env):
    c, state = ha_env["contract"], state_of(ha_env)
    assert c.timescale.ha == "patroni"
    assert c.timescale.port == state["services"]["pg-1"]["port"]
    assert [r.port for r in c.timescale.replicas] == [state["services"]["pg-2"]["port"]]
    assert "target_session_attrs=read-write" in c.timescale.dsn()
    assert c.redis.mode == "sentinel" and c.redis.master_name == "backbone"
    assert sorted(s.port for s in c.redis.sentinels) == sorted(
        state["services"][f"sentinel-{i}"]["port"] for i in (1, 2, 3))


def test_secrets_stay_off_command_lines_and_in_private_files(ha_env):
    c, state = ha_env["contract"], state_of(ha_env)
    secrets_ = [c.redis.password.get_secret_value(), c.timescale.password.get_secret_value()]
    for name, svc in state["services"].items():
        assert not any(s in arg for s in secrets_ for arg in svc["argv"]), name
    for name in sentinel.REDIS_NODES:
        for private in ("auth.conf", "users.acl"):
            assert os.stat(os.path.join(state["services"][name]["home"], private)).st_mode & 0o077 == 0
    for name in patroni.MEMBERS:
        assert os.stat(os.path.join(state["services"][name]["home"], "patroni.yml")).st_mode & 0o077 == 0


def test_sentinel_failover_promotes_the_replica(ha_env):
    state, c = state_of(ha_env), ha_env["contract"]
    old = sentinel.primary(state)
    [new] = sentinel.replicas(state)
    killed = time.monotonic()
    os.kill(state["services"][old]["pid"], signal.SIGKILL)
    wrote_after, last = None, None
    while time.monotonic() - killed < SENTINEL_FAILOVER_BOUND_S:
        try:
            if sentinel.primary(state, timeout_s=1) == new:
                client = redis_client(c.redis, 1)  # through the Sentinels, with their account, over TLS
                client.set(KEY, "written after failover")
                wrote_after = time.monotonic() - killed
                break
        except (redis.RedisError, OSError, RuntimeError) as exc:
            last = exc
        time.sleep(0.1)
    assert wrote_after is not None, (f"no write through Sentinel within {SENTINEL_FAILOVER_BOUND_S} s of killing "
                                     f"{old} (last error: {last!r}); see {state['services'][new]['log']}")
    print(f"\nSentinel failover {old} -> {new}: first write {wrote_after:.1f} s after SIGKILL")
    restart = run_backbone("local", "start", old, "--state-dir", str(ha_env["state_dir"]))
    assert restart.returncode == 0, restart.stderr
    state = state_of(ha_env)
    assert sentinel.primary(state) == new and sentinel.replicas(state) == [old]
    assert client.get(KEY) == b"written after failover"


def test_patroni_failover_elects_the_other_member(ha_env):
    state, c = state_of(ha_env), ha_env["contract"]
    old = patroni.primary(state)
    [new] = patroni.replicas(state)
    pids = patroni.member_pids(state, old)
    assert len(pids) == 2, f"expected Patroni and its postmaster for {old}, got {pids}"
    killed = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wrote_after, last = None, None
    while time.monotonic() - killed < PATRONI_FAILOVER_BOUND_S:
        try:
            # the contract's multi-host DSN: libpq skips the dead member and any standby
            with psycopg.connect(url(c, "owner"), connect_timeout=2, autocommit=True) as conn:  # it creates a table
                conn.execute("CREATE TABLE IF NOT EXISTS ha_drill (note text)")
                conn.execute("INSERT INTO ha_drill VALUES ('written after failover')")
            wrote_after = time.monotonic() - killed
            break
        except psycopg.Error as exc:
            last = exc
        time.sleep(0.2)
    assert wrote_after is not None, (f"no write through the contract DSN within {PATRONI_FAILOVER_BOUND_S} s "
                                     f"of killing {old} (last error: {last}); see {state['services'][new]['log']}")
    assert patroni.primary(state) == new
    print(f"\nPatroni failover {old} -> {new}: first write {wrote_after:.1f} s after SIGKILL")
    restart = run_backbone("local", "start", old, "--state-dir", str(ha_env["state_dir"]))
    assert restart.returncode == 0, restart.stderr  # it rejoins as a streaming replica (pg_rewind)
    state = state_of(ha_env)
    assert patroni.primary(state) == new and patroni.replicas(state) == [old]
    code, checks, result = validate(ha_env)
    assert code == 0, result.stdout + result.stderr
    assert checks["timescale"]["details"]["replicas"][0]["state"] == "streaming"


def test_down_leaves_nothing(ha_env):
    state = state_of(ha_env)
    postmasters = [pid for n in patroni.MEMBERS for pid in patroni.member_pids(state, n)]
    down = run_backbone("local", "down", "--state-dir", str(ha_env["state_dir"]))
    assert down.returncode == 0, down.stderr
    pids = [svc["pid"] for svc in state["services"].values() if svc.get("pid")] + postmasters
    # a postmaster may still be finishing its exit (or be a zombie awaiting init) for a moment
    deadline = time.monotonic() + 10
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if alive(p)] == []
    outside = [svc["outside_state_dir"] for svc in state["services"].values() if svc.get("outside_state_dir")]
    assert len(outside) == 2 and not any(os.path.exists(d) for d in outside)
    assert not ha_env["state_dir"].exists()
