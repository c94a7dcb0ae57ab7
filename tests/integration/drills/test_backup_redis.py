"""The Redis backup / restore drill against the session's real Redis: BGSAVE (or a given RDB),
a scratch redis-server loads it, key count and content digest compared, objectives; the
scratch server and its files are gone afterwards, whatever happened."""
import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from backbone.clients.redis import redis_client
from backbone.contract import Contract, merge_outputs
from backbone.drills import backup_redis
from backbone.drills.backup import BackupDrillError
from backbone.drills.backup_redis import redis_backup_drill, to_markdown
from backbone.local.redis_access import operator_account
from backbone.local.services import free_port


def contract_of(local_env, **redis_changes) -> Contract:
    doc = merge_outputs(local_env["contract"])
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    doc["redis"] = {**doc["redis"], **redis_changes}
    return Contract.model_validate(doc)


def password_of(local_env) -> str:
    return local_env["contract"]["backbone_secrets"]["redis"]["password"]


def operator(local_env):
    """The account the drill backs up with: the environment's administration account (the
    application's ACL user may not BGSAVE, CONFIG GET or read outside its namespace)."""
    return operator_account(local_env["state_dir"])


def run_drill(local_env, contract, work_dir, **kwargs):
    return redis_backup_drill(contract, work_dir, operator=operator(local_env), **kwargs)


def write_keys(contract: Contract, n: int = 5) -> str:
    """n keys of each type under a prefix no other test uses (inside the application's
    namespace, where its ACL user may write), half of them with a TTL long enough to outlive
    the test; returns the prefix."""
    prefix = f"{contract.redis.cache_policy.namespace}:drill-backup:{uuid.uuid4().hex[:8]}:"
    client = redis_client(contract.redis, 5)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"{prefix}s{i}", f"value-{i}")
            pipe.hset(f"{prefix}h{i}", mapping={"a": i, "b": "x" * i, "c": "é"})
            pipe.rpush(f"{prefix}l{i}", *[f"item-{j}" for j in range(i + 1)])
            pipe.sadd(f"{prefix}set{i}", *[f"m-{j}" for j in range(i + 1)])
            pipe.zadd(f"{prefix}z{i}", {f"m-{j}": j * 1.5 for j in range(i + 1)})
            if i % 2:
                for kind in ("s", "h", "l", "set", "z"):
                    pipe.expire(f"{prefix}{kind}{i}", 3600)
        pipe.xadd(f"{prefix}stream", {"f": "v"})
        pipe.execute()
    finally:
        client.close()
    return prefix


def our_redis_servers() -> set[int]:
    """redis-server processes this test process started (zombies included): other sessions
    may run redis-servers of their own meanwhile."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text() if proc.name.isdigit() else ""
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Name") == "redis-server" and int(fields.get("PPid", 0)) == os.getpid():
            found.add(int(proc.name))
    return found


def assert_cleaned_up(work_dir: Path) -> None:
    assert not list(work_dir.glob(".redis-restore-*"))  # the scratch dir is removed
    assert not our_redis_servers()                       # and its server is gone, reaped


@pytest.fixture(scope="module")
def early_snapshot(local_env, tmp_path_factory):
    """An RDB of the source taken by the drill before the other tests write their keys."""
    contract = contract_of(local_env)
    write_keys(contract, 2)
    drill = run_drill(local_env, contract, tmp_path_factory.mktemp("early"), timeout_s=30)
    return drill.snapshot_path


def test_snapshot_restores_with_equal_keys_and_digest(local_env, tmp_path, monkeypatch):
    contract = contract_of(local_env)
    prefix = write_keys(contract)
    argvs, spawn = [], backup_redis.spawn

    def recording_spawn(argv, *args, **kwargs):  # what `ps` shows of the scratch server
        started = spawn(argv, *args, **kwargs)
        argvs.append(Path(f"/proc/{started.pid}/cmdline").read_bytes().decode(errors="replace"))
        return started
    monkeypatch.setattr(backup_redis, "spawn", recording_spawn)

    started = time.monotonic()
    drill = run_drill(local_env, contract, tmp_path / "drills", timeout_s=30)
    elapsed = time.monotonic() - started

    assert drill.passed and drill.ok and drill.rto_met and drill.rpo_met, drill.notes
    assert drill.source_keys == drill.restored_keys >= 26  # 5 per type x 5 types + the stream
    assert drill.source_digest == drill.restored_digest and len(drill.source_digest) == 64
    assert drill.source_unchanged and drill.expiring_keys == 0
    assert drill.snapshot_taken and drill.snapshot_s is not None
    assert drill.snapshot_path.parent == tmp_path / "drills"
    assert drill.snapshot_path.read_bytes()[:5] == b"REDIS"
    assert drill.snapshot_path.stat().st_mode & 0o777 == 0o600  # the snapshot is the data
    assert drill.backup_age_s < 5 and elapsed < 15
    assert_cleaned_up(tmp_path / "drills")
    # the scratch copy listened on no TCP port: a Unix socket in a directory of its own, gone now
    assert drill.scratch_socket and not Path(drill.scratch_socket).parent.exists()
    assert not Path(drill.scratch_dir).exists() and "--port" not in argvs[0]

    # the keys this test wrote are among those compared
    client = redis_client(contract.redis, 5)
    try:
        assert len(list(client.scan_iter(match=f"{prefix}*"))) == 26
    finally:
        client.close()

    secret = password_of(local_env)
    admin = operator(local_env)[1]
    data, markdown = drill.to_dict(), to_markdown(drill)
    assert data["keys"]["match"] and data["digest"]["match"] and data["passed"]
    assert json.loads(json.dumps(data)) == data
    assert markdown == drill.to_markdown() and "RPO: backup age" in markdown and "✅ restore verified" in markdown
    assert secret not in json.dumps(data) and secret not in markdown
    assert admin not in json.dumps(data) and admin not in markdown
    # neither the source's password nor any other reaches the scratch server's command line
    assert len(argvs) == 1 and secret not in argvs[0] and "requirepass" not in argvs[0]


def test_truncated_or_wrong_dump_fails_clearly_and_cleans_up(local_env, tmp_path, early_snapshot):
    contract = contract_of(local_env)
    truncated = tmp_path / "truncated.rdb"
    data = early_snapshot.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    started = time.monotonic()
    with pytest.raises(BackupDrillError) as failed:
        run_drill(local_env, contract, tmp_path / "work", dump=truncated, timeout_s=20)
    assert time.monotonic() - started < 10
    assert "stopped before it had loaded" in str(failed.value) and str(truncated) in str(failed.value)
    assert password_of(local_env) not in str(failed.value)
    assert_cleaned_up(tmp_path / "work")

    wrong = tmp_path / "not-an-rdb.rdb"
    wrong.write_text("hello\n")
    with pytest.raises(BackupDrillError, match="not an RDB file"):
        run_drill(local_env, contract, tmp_path / "work", dump=wrong, timeout_s=20)
    with pytest.raises(BackupDrillError, match="no RDB file"):
        run_drill(local_env, contract, tmp_path / "work", dump=tmp_path / "missing.rdb", timeout_s=20)
    assert_cleaned_up(tmp_path / "work")


def test_dump_older_than_new_keys_is_reported_as_a_mismatch(local_env, tmp_path, early_snapshot):
    contract = contract_of(local_env)
    write_keys(contract)  # after the early snapshot: the restored copy lacks them
    drill = run_drill(local_env, contract, tmp_path, dump=early_snapshot, timeout_s=30)
    assert not drill.snapshot_taken and drill.snapshot_path == early_snapshot
    assert drill.restored_keys < drill.source_keys
    assert drill.source_digest != drill.restored_digest
    assert not drill.ok and not drill.passed
    assert any("missing" in n for n in drill.notes), drill.notes
    assert "❌ restore drill failed" in drill.to_markdown()


def test_dump_older_than_the_rpo_fails_the_rpo(local_env, tmp_path, early_snapshot):
    contract = contract_of(local_env)
    old = tmp_path / "old.rdb"
    old.write_bytes(early_snapshot.read_bytes())
    past = time.time() - contract.objectives.redis.rpo_s - 60
    os.utime(old, (past, past))
    drill = run_drill(local_env, contract, tmp_path, dump=old, timeout_s=30)
    assert drill.backup_age_s > contract.objectives.redis.rpo_s
    assert not drill.rpo_met and not drill.passed
    assert drill.rto_met  # the restore itself was quick
    assert "| RPO: backup age |" in drill.to_markdown() and drill.to_dict()["rpo_met"] is False


def test_unreachable_source_fails_without_the_password(local_env, tmp_path):
    contract = contract_of(local_env, port=free_port())
    with pytest.raises(BackupDrillError) as failed:
        run_drill(local_env, contract, tmp_path, timeout_s=5)
    assert "redis 127.0.0.1:" in str(failed.value)
    assert password_of(local_env) not in str(failed.value)


def test_writes_during_the_drill_are_reported_never_a_silent_pass(local_env, tmp_path):
    contract = contract_of(local_env)
    prefix = write_keys(contract)
    stop, written = threading.Event(), []

    def writer():
        client = redis_client(contract.redis, 5)
        try:
            while not stop.is_set():
                client.set(f"{prefix}w{len(written)}", "x")
                written.append(1)
        finally:
            client.close()
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 100:
            time.sleep(0.01)
        drill = run_drill(local_env, contract, tmp_path, timeout_s=30)
    finally:
        stop.set()
        thread.join()
    assert not drill.source_unchanged
    assert any("written to" in n for n in drill.notes), drill.notes
    assert drill.to_dict()["source_unchanged"] is False
    assert_cleaned_up(tmp_path)


def test_the_application_account_may_not_take_a_backup(local_env, tmp_path):
    """Without the operator's account the drill runs as the contract's application user,
    whose ACL refuses CONFIG GET (and BGSAVE): a clear error pointing at --dump, no secret."""
    with pytest.raises(BackupDrillError) as failed:
        redis_backup_drill(contract_of(local_env), tmp_path, timeout_s=10)
    assert "CONFIG GET dir is not allowed" in str(failed.value) and "--dump FILE" in str(failed.value)
    assert password_of(local_env) not in str(failed.value)
    assert_cleaned_up(tmp_path)
