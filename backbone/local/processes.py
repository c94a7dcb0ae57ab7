"""Start and stop service processes by process id, never by name.

A recorded pid is trusted only while the kernel's start time of that pid is the one we
recorded at spawn, so a reused pid is never signalled. (The command line is no proof:
Redis rewrites its own process title.)
"""
from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackboneError


class SpawnError(BackboneError, RuntimeError):
    """A service process could not be started at all; the message names the binary and why."""


@dataclass
class Started:
    pid: int
    start_ticks: int


def spawn(argv: list[str], log_path: Path, user: str | None = None, cwd: Path | None = None,
          env: dict[str, str] | None = None, group: int | None = None) -> Started:
    """Start `argv` in its own session (so a Ctrl-C in the terminal does not reach it),
    with stdout and stderr appended to `log_path`. `group`: the process's own group id
    (the member's, which the partition drills filter on); the user's group stays a
    supplementary one so file access is unchanged."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        kwargs: dict = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        if group is not None and os.geteuid() == 0:
            kwargs["extra_groups"] = [kwargs["group"]] if "group" in kwargs else [os.getegid()]
            kwargs["group"] = group
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env, start_new_session=True, **kwargs)
        except OSError as exc:  # not executable by that user, missing interpreter, ...
            who = f" as user {user}" if user else ""
            raise SpawnError(f"could not start {argv[0]}{who}: {exc.strerror or exc}") from None
    return Started(proc.pid, _start_ticks(proc.pid) or 0)


def run_as(argv: list[str], user: str | None, timeout_s: float = 120) -> subprocess.CompletedProcess:
    kwargs = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, **kwargs)


def _stat(pid: int) -> list[str] | None:
    try:
        # fields after the ")" that closes the command name: state is [0], starttime is [19]
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_ours(pid: int | None, start_ticks: int | None) -> bool:
    """True while `pid` is alive and is the very process we started."""
    if not pid:
        return False
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":  # gone, or exited and waiting to be reaped
        return False
    return int(fields[19]) == start_ticks


def stop(pid: int | None, start_ticks: int | None, sig: int = signal.SIGTERM, grace_s: float = 20.0) -> bool:
    """Signal our process, wait for it to exit, SIGKILL it after `grace_s`.
    Returns False when there was nothing of ours to stop."""
    return bool(stop_all([(pid, start_ticks, sig)], grace_s))


def stop_all(targets: list[tuple[int | None, int | None, int]], grace_s: float = 20.0) -> list[int]:
    """Signal every process of ours at once, then wait for all of them (SIGKILL after
    `grace_s`). Stopping peers together matters for quorum systems: a KRaft node stopped
    after its peers can wait a long time for a quorum that is already gone."""
    signalled = []
    for pid, ticks, sig in targets:
        if is_ours(pid, ticks):
            try:
                os.kill(pid, sig)
                signalled.append((pid, ticks))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _running(signalled):
        time.sleep(0.05)
    for pid, ticks in _running(signalled):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while _running(signalled):
        time.sleep(0.05)
    return [pid for pid, _ in signalled]


def _running(procs: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    for pid, _ in procs:
        _reap(pid)
    return [(pid, ticks) for pid, ticks in procs if is_ours(pid, ticks)]


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for others this is a harmless no-op.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
