"""The Redis backup / restore drill: prove that an RDB snapshot restores, how long the
restore takes (against the RTO) and how old the snapshot is (against the RPO).

Take a snapshot of the contract's master (BGSAVE; or use a given RDB file), load it into a
scratch redis-server on a private Unix socket, and compare key count and a content digest
of the contract's database with the source's; the scratch server and its files go away
whatever happens.

The digest is computed client-side, the same way on both servers: DEBUG DIGEST is off by
default since Redis 7 (`enable-debug-command no`) and on managed services, and DUMP bytes
depend on each server's encoding thresholds. Passwords never reach a command line (ps):
the scratch server gets its own random one through a 0600 config file.

The source: BGSAVE, CONFIG GET of where the RDB goes and a read of every key are an
operator's, not the application's (its ACL user refuses them): `operator` is the account to
use (on the local platform, its administration account from state.json, found through
`BackupOptions.state_dir`); without one, the contract's. The scratch copy holds the data:
it listens on no TCP port at all, only on a Unix socket inside the drill's 0700 scratch
directory, with a password as well.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from ..clients.redis import node_client, redis_client
from ..contract import Contract, RedisEndpoint
from ..local.binaries import SETUP_HINT, find_binaries
from ..local.processes import is_ours, spawn, stop, tail
from ..report import Redactor
from .backup import BackupDrillError, RestoreVerdict
from .live import mark, rounded
from .redis_digest import KeyDigests, _b, _combine, _key_digests

_EXPIRY_MARGIN_S = 2  # a key whose TTL ends this close to the comparison may be gone on either side


@dataclass
class RedisBackupDrill(RestoreVerdict):
    snapshot_path: Path
    backup_age_s: float
    restore_s: float
    source_keys: int       # keys compared (the contract's database, TTLs ending during the drill left out)
    restored_keys: int
    source_digest: str
    restored_digest: str
    objectives: dict[str, float]
    snapshot_taken: bool = False       # True when the drill took the snapshot itself (BGSAVE)
    snapshot_s: float | None = None    # how long the BGSAVE took
    db: int = 0
    source_unchanged: bool = True      # no write reached the source between its digest and the snapshot
    expiring_keys: int = 0             # left out of both sides: their TTL ends during the drill
    redis_version: str | None = None
    scratch_dir: str = ""
    scratch_socket: str | None = None  # the scratch server's Unix socket (it listens on no port)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # an empty database proves nothing about the data: not a pass
        return self.source_keys > 0 and self.source_keys == self.restored_keys \
            and self.source_digest == self.restored_digest

    @property
    def age_s(self) -> float:
        return self.backup_age_s

    def to_dict(self) -> dict[str, Any]:
        return {"service": "redis", "snapshot_path": str(self.snapshot_path), "snapshot_taken": self.snapshot_taken,
                "snapshot_s": rounded(self.snapshot_s), "backup_age_s": rounded(self.backup_age_s),
                "restore_s": rounded(self.restore_s), "db": self.db, "redis_version": self.redis_version,
                "keys": {"source": self.source_keys, "restored": self.restored_keys,
                         "match": self.source_keys == self.restored_keys},
                "digest": {"source": self.source_digest, "restored": self.restored_digest,
                           "match": self.source_digest == self.restored_digest},
                "expiring_keys": self.expiring_keys, "source_unchanged": self.source_unchanged,
                "scratch_socket": self.scratch_socket, "objectives": self.objectives, "ok": self.ok,
                "rto_met": self.rto_met, "rpo_met": self.rpo_met, "passed": self.passed, "notes": self.notes}

    def to_markdown(self) -> str:
        return to_markdown(self)


def to_markdown(result: RedisBackupDrill) -> str:
    verdict = "✅ restore verified, objectives met" if result.passed else "❌ restore drill failed"
    how = (f"taken by the drill with BGSAVE in {result.snapshot_s:.2f} s"
           if result.snapshot_taken and result.snapshot_s is not None else "given")
    digests_match = result.source_digest == result.restored_digest
    lines = ["# Backup / restore drill: redis", "", f"**{verdict}**", "",
             f"Snapshot: `{result.snapshot_path}` ({how}); loaded into a scratch redis-server on a private "
             f"Unix socket (no TCP port), stopped and removed afterwards.", "",
             "| measure | value | objective | met |", "|---|---|---|---|",
             f"| RTO: restore time | {result.restore_s:.2f} s | ≤ {result.objectives['rto_s']:g} s | "
             f"{mark(result.rto_met)} |",
             f"| RPO: backup age | {result.backup_age_s:.1f} s | ≤ {result.objectives['rpo_s']:g} s | "
             f"{mark(result.rpo_met)} |",
             "", f"| db {result.db} | source | restored | match |", "|---|---|---|---|",
             f"| keys | {result.source_keys} | {result.restored_keys} | "
             f"{mark(result.source_keys == result.restored_keys)} |",
             f"| content digest (sha256) | `{result.source_digest[:16]}` | `{result.restored_digest[:16]}` | "
             f"{mark(digests_match)} |"]
    if result.notes:
        lines += ["", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def run(contract: Contract, options) -> RedisBackupDrill:
    """The registry's signature (drills/backups.py)."""
    operator = None
    if contract.platform == "local" and getattr(options, "state_dir", None) is not None:
        from ..local.redis_access import operator_account
        operator = operator_account(options.state_dir)
    return redis_backup_drill(contract, options.work_dir, dump=options.given, timeout_s=options.timeout_s,
                              operator=operator)


def _as_operator(ep: RedisEndpoint, operator: tuple[str, str] | None) -> RedisEndpoint:
    """The contract's endpoint with the operator's account instead of the application's."""
    if operator is None or ep.url is not None:
        return ep
    return ep.model_copy(update={"username": operator[0], "password": SecretStr(operator[1])})


def redis_backup_drill(contract: Contract, work_dir: Path, dump: Path | None = None,
                       timeout_s: float = 600.0, operator: tuple[str, str] | None = None) -> RedisBackupDrill:
    if contract.redis is None:
        raise BackupDrillError("the redis backup drill needs a redis section in the contract")
    server = find_binaries().redis_server
    if server is None:
        raise BackupDrillError(f"redis-server not found (the scratch server needs it; {SETUP_HINT})")
    scratch_password = secrets.token_urlsafe(24)
    redactor = Redactor(contract.secrets() + [scratch_password] + ([operator[1]] if operator else []))
    deadline = time.monotonic() + timeout_s
    work_dir, db = Path(work_dir), int(contract.redis.target().get("db") or 0)
    notes: list[str] = []
    try:
        source = redis_client(_as_operator(contract.redis, operator), min(timeout_s, 30))
        try:
            version = source.info("server").get("redis_version")
            others = sorted(name for name in source.info("keyspace") if name != f"db{db}")
            if others:  # the RDB holds them and the copy loads them; only the contract's is compared
                notes.append(f"other databases hold keys too ({', '.join(others)}): not compared, "
                             f"the contract uses db {db}")
            if dump is None:
                source_keys, source_unchanged, snapshot, snapshot_s, taken_at = _snapshot(source, work_dir, deadline)
                backup_age_s = max(0.0, time.time() - taken_at)
            else:
                snapshot, snapshot_s = _check_rdb(Path(dump)), None  # before the walk: fail fast
                backup_age_s = max(0.0, time.time() - snapshot.stat().st_mtime)
                before = _write_mark(source.info("persistence"))
                source_keys = _key_digests(source, deadline, "the source")
                source_unchanged = _write_mark(source.info("persistence")) == before
        finally:
            source.close()
        if not source_unchanged:
            notes.append("the source was written to (or saved) while its digest was taken: a difference "
                         "below may be those writes rather than the backup; rerun with writes paused")
        restored_keys, restore_s, scratch_dir, socket_path, expired_on_load = _restore(
            server, snapshot, work_dir, db, scratch_password, deadline, timeout_s)
    except BackupDrillError as exc:
        raise BackupDrillError(redactor.scrub(str(exc))) from None
    except redis.RedisError as exc:
        raise BackupDrillError(redactor.scrub(f"{_where(contract.redis)}: {exc}")) from None
    except OSError as exc:
        raise BackupDrillError(redactor.scrub(f"redis backup drill: {exc}")) from None

    # keys whose TTL ends before now (plus a margin) may be gone on either side by design
    cutoff = time.time() + _EXPIRY_MARGIN_S
    expiring = {k for k, (_, expires_at) in source_keys.items() if expires_at is not None and expires_at <= cutoff}
    src = {k: v[0] for k, v in source_keys.items() if k not in expiring}
    dst = {k: v[0] for k, v in restored_keys.items() if k not in expiring}
    if expiring:
        notes.append(f"{len(expiring)} key(s) whose TTL ends during the drill were left out on both sides")
    if expired_on_load:
        notes.append(f"the scratch server dropped {expired_on_load} already-expired key(s) while loading")
    missing, extra = len(src.keys() - dst.keys()), len(dst.keys() - src.keys())
    different = sum(1 for k in src.keys() & dst.keys() if src[k] != dst[k])
    if missing or extra or different:
        notes.append(f"restored copy differs: {missing} key(s) missing, {extra} extra, {different} with "
                     "different content")
    if not src:
        notes.append(f"db {db} holds no keys: there is nothing to verify, so the drill cannot pass")
    if dump is not None:
        notes.append("the snapshot was given: it is compared with the source as it is now")
    return RedisBackupDrill(snapshot_path=snapshot, backup_age_s=backup_age_s, restore_s=restore_s,
                            source_keys=len(src), restored_keys=len(dst), source_digest=_combine(src),
                            restored_digest=_combine(dst), objectives=contract.objectives.redis.model_dump(),
                            snapshot_taken=dump is None, snapshot_s=snapshot_s, db=db,
                            source_unchanged=source_unchanged, expiring_keys=len(expiring), redis_version=version,
                            scratch_dir=str(scratch_dir), scratch_socket=str(socket_path),
                            notes=[redactor.scrub(n) for n in notes])


# --- pieces ---------------------------------------------------------------------------------



def _snapshot(client: redis.Redis, work_dir: Path, deadline: float):
    """Digest the source, then BGSAVE. Inside MULTI, Redis 7 only schedules a BGSAVE, so the
    fork and a read of the write counter go in one pipelined round trip instead: when the
    counter read just after the fork equals the one read before the digest, the snapshot
    holds exactly what was digested; anything else is reported, never assumed."""
    rdb = Path(_config(client, "dir")) / _config(client, "dbfilename")
    while True:
        _until(lambda: not _child_busy(client), deadline, "a save or AOF rewrite already running on the source "
               "did not finish")
        before = _write_mark(client.info("persistence"))
        keys = _key_digests(client, deadline, "the source")
        taken_at = time.time()
        pipe = client.pipeline(transaction=False)
        pipe.bgsave(schedule=False)
        pipe.info("persistence")
        started, info = pipe.execute(raise_on_error=False)
        if not isinstance(started, Exception):
            break
        # another child (a scheduled save, an AOF rewrite) won the race: digest again after it;
        # any other refusal (ACL, a renamed command) is final
        if ("progress" not in str(started) and "child" not in str(started)) or time.monotonic() > deadline:
            raise BackupDrillError(f"BGSAVE refused by the source: {started}")
    # our save must still be running when read (else the counter was reset by its completion)
    unchanged = bool(info.get("rdb_bgsave_in_progress")) and _write_mark(info, saves_since=1) == before
    t0 = time.monotonic()
    _until(lambda: not client.info("persistence")["rdb_bgsave_in_progress"], deadline, "BGSAVE did not finish")
    snapshot_s = time.monotonic() - t0
    status = client.info("persistence")["rdb_last_bgsave_status"]
    if status != "ok":
        raise BackupDrillError(f"BGSAVE failed on the source (rdb_last_bgsave_status: {status}); see its log")
    work_dir.mkdir(parents=True, exist_ok=True)
    copy = work_dir / f"redis-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}.rdb"
    try:
        # a file older than our BGSAVE is not ours: same path on this machine, server elsewhere
        if rdb.stat().st_mtime < taken_at - 5:
            raise BackupDrillError(f"{rdb} predates the BGSAVE just taken: the server writes elsewhere")
        _copy_private(rdb, copy)
    except OSError as exc:
        raise BackupDrillError(f"cannot read the snapshot the server wrote at {rdb} ({exc.strerror}): on a remote "
                               "or managed Redis, give an RDB copy with --dump FILE") from None
    return keys, unchanged, copy, snapshot_s, taken_at


def _restore(server: Path, snapshot: Path, work_dir: Path, db: int, password: str, deadline: float,
             timeout_s: float) -> tuple[KeyDigests, float, Path, Path, int]:
    work_dir.mkdir(parents=True, exist_ok=True)
    # absolute: the server runs in that folder, where a relative path would point elsewhere
    scratch = Path(tempfile.mkdtemp(prefix=".redis-restore-", dir=work_dir)).absolute()  # 0700
    # the socket's own 0700 directory, short enough for a socket path (108 bytes at most)
    sock_dir = Path(tempfile.mkdtemp(prefix="backbone-redis-"))
    sock, proc, client = sock_dir / "redis.sock", None, None
    try:
        started = time.monotonic()  # the restore: put the file in place, start, load
        _copy_private(snapshot, scratch / "dump.rdb")
        conf = scratch / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            # save "": the copy never writes back; sanitize-dump-payload: a corrupt value fails
            # the load here instead of crashing the digest later; the password is URL-safe
            quoted_dir = str(scratch).replace("\\", "\\\\").replace('"', '\\"')
            # port 0: no TCP listener; the socket is the owner's only (and in a 0700 directory)
            quoted_sock = str(sock).replace("\\", "\\\\").replace('"', '\\"')
            f.write(f'port 0\nunixsocket "{quoted_sock}"\nunixsocketperm 600\ndaemonize no\n'
                    f'dir "{quoted_dir}"\ndbfilename dump.rdb\nappendonly no\nsave ""\nsanitize-dump-payload yes\n'
                    f'requirepass {password}\n')
        proc = spawn([str(server), str(conf)], scratch / "redis.log", cwd=scratch)
        client = node_client("localhost", 0, min(timeout_s, 30), password=password, db=db, connect_timeout_s=2,
                             retry=False, unix_socket_path=str(sock))  # we poll ourselves

        def loaded() -> bool:
            if not is_ours(proc.pid, proc.start_ticks):
                raise BackupDrillError(f"the scratch redis-server stopped before it had loaded {snapshot}: "
                                       f"{_why_stopped(scratch / 'redis.log')}")
            try:
                return client.info("persistence")["loading"] == 0
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                return False
        _until(loaded, deadline, f"the scratch redis-server did not load {snapshot}")
        restore_s = time.monotonic() - started
        expired = int(client.info("persistence").get("rdb_last_load_keys_expired", 0))
        return _key_digests(client, deadline, "the restored copy"), restore_s, scratch, sock, expired
    except redis.RedisError as exc:  # not the source's failure: say which server
        raise BackupDrillError(f"the scratch redis-server on {sock}: {exc}") from None
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            stop(proc.pid, proc.start_ticks, grace_s=10)
            _reap(proc.pid)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(sock_dir, ignore_errors=True)


def _reap(pid: int) -> None:
    """Collect our exited child: `stop` leaves alone a server that died by itself (on a bad
    file), and a multi-threaded one is reapable only once its last thread has exited."""
    give_up = time.monotonic() + 5
    while time.monotonic() < give_up:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:  # already collected
            return
        time.sleep(0.01)


def _check_rdb(path: Path) -> Path:
    if not path.is_file():
        raise BackupDrillError(f"no RDB file at {path}")
    with open(path, "rb") as f:
        if f.read(5) != b"REDIS":
            raise BackupDrillError(f"{path} is not an RDB file (no REDIS signature)")
    return path


def _why_stopped(log: Path) -> str:
    """Redis's own reason: its last warnings ("#") and redis-check-rdb's verdict, not the
    start-up banner or the key counts that follow."""
    lines = tail(log, 60).splitlines()
    why = [line.split(" # ", 1)[1] for line in lines if " # " in line and "WARNING" not in line][-2:]
    if "--- RDB ERROR DETECTED ---" in lines:
        at = lines.index("--- RDB ERROR DETECTED ---") + 1
        why += lines[at:at + 1]
    return " / ".join(why) or " / ".join(lines[-3:]) or "no log"


def _child_busy(client: redis.Redis) -> bool:
    info = client.info("persistence")  # BGSAVE is refused while any of these children runs
    return any(info.get(k) for k in ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress"))


def _write_mark(info: dict[str, Any], saves_since: int = 0) -> tuple:
    # rdb_changes_since_last_save resets when a save completes: the save count and time
    # are part of the mark (rdb_saves, Redis 7+, counts a save from its fork)
    saves = info.get("rdb_saves")
    return (None if saves is None else saves - saves_since, info.get("rdb_last_save_time"),
            info.get("rdb_changes_since_last_save"))


def _config(client: redis.Redis, name: str) -> str:
    try:
        value = next(iter(client.config_get(name).values()), None)
    except redis.ResponseError as exc:  # CONFIG renamed or refused, as on managed services
        raise BackupDrillError(f"CONFIG GET {name} is not allowed on the source ({exc}): give an RDB copy "
                               "with --dump FILE") from None
    if not value:
        raise BackupDrillError(f"the source does not report its {name}: give an RDB copy with --dump FILE")
    return _b(value).decode()


def _copy_private(src: Path, dst: Path) -> None:
    """The snapshot is the data: readable by its owner only, from the first byte."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _until(ready, deadline: float, what: str) -> None:
    while not ready():
        if time.monotonic() > deadline:
            raise BackupDrillError(f"{what} within the timeout")
        time.sleep(0.02)


def _where(ep: RedisEndpoint) -> str:
    if ep.mode == "sentinel":
        return f"redis (sentinel master {ep.master_name})"
    t = ep.target()
    return f"redis {t['host']}:{t['port']}/{t['db']}"
