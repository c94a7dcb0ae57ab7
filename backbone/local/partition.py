"""Real network partitions on the local platform.

Every member of a local environment runs with a group id of its own (`member_gid`), so the
kernel knows which member each socket belongs to even though all of them share loopback.
A partition is one nftables table per environment, `inet backbone_partition_<id>`, in the
output hook of `lo`:

    the isolated member's sockets -> any port its peers listen on: dropped
    its peers' sockets            -> any port it listens on:        dropped

That cuts every TCP connection between them in both directions (one direction of each is
enough to stall it) while clients, which run with other group ids, still reach every member:
the isolated one too, as a client on its side of a real partition would.

A member's ports are the ones the environment assigned to it (PostgreSQL and Patroni's REST
API, Kafka's broker and controller listeners, ...) and every port any of its processes
listens on (read from /proc). Its processes are not just the tree under the pid we started:
Patroni starts the postmaster in a session of its own and it is re-parented to init, so a
tree walk missed it once and PostgreSQL kept replicating through a "partition". They are the
trees of its roots (our pid, and the postmaster from its postmaster.pid) and every process
in a root's session. Each must run with the member's group id, or the cut would leak.

The cut is proven, not assumed: while it holds, a probe running with each peer's group id
connects to every cut port of the member, and one with the member's group id to every port
of its peers; each must time out. A client probe (the drill's own group id) to the member's
ports shows they are still served, so the timeouts are the cut's doing.
Healing deletes the table; `local down` and every `drill run` delete a stale one first, so a
killed drill leaves nothing behind. Only loopback (`oifname "lo"`) is ever filtered.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

GID_BASE = 47300  # member gids: GID_BASE + the member's index in the environment


class PartitionError(RuntimeError):
    pass


def table_for(state_dir: Path) -> str:
    """The environment's own table: one environment's drill never touches another's rules."""
    import hashlib
    return "backbone_partition_" + hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:10]


def member_gid(names: list[str], name: str) -> int:
    return GID_BASE + sorted(names).index(name)


def unavailable() -> str | None:
    """Why partitions cannot be made here, or None."""
    if shutil.which("nft") is None:
        return "nftables (`nft`) is not installed: `make setup` installs it"
    if os.geteuid() != 0:
        return "changing nftables rules needs root"
    return None


def _processes() -> dict[int, tuple[int, int]]:
    """Every process: pid -> (parent pid, session id)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                found[int(entry.name)] = (int(fields[1]), int(fields[3]))  # ppid, session
            except (OSError, IndexError, ValueError):
                continue
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    return _tree([pid], _processes())


def _tree(roots: list[int], procs: dict[int, tuple[int, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(child)
    found, todo = dict.fromkeys(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = None
                todo.append(child)
    return list(found)


def member_processes(roots: list[int]) -> list[int]:
    """Every process of a member whose root processes are `roots`: their trees, and every
    process in one of their sessions (a daemon re-parented to init keeps its session)."""
    procs = _processes()
    sessions = {procs[r][1] for r in roots if r in procs}
    return _tree(list(dict.fromkeys([*roots, *(p for p, (_, sid) in procs.items() if sid in sessions)])), procs)


def fs_gid(pid: int) -> int | None:
    """The group id the kernel files `pid`'s new sockets under (what `meta skgid` matches)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Gid:"):
                return int(line.split()[4])  # real, effective, saved, filesystem
    except (OSError, IndexError, ValueError):
        pass
    return None


def member_ports(name: str, gid: int, assigned: set[int], roots: list[int]) -> set[int]:
    """The ports the environment assigned to member `name` and every port its processes
    listen on. A process of the member running with another group id would slip through
    the cut: refused, rather than a partition that only looks real."""
    pids = member_processes(roots)
    strays = {pid: g for pid in pids if (g := fs_gid(pid)) is not None and g != gid}
    if strays:
        raise PartitionError(f"cannot cut {name} off: its process(es) {', '.join(map(str, strays))} run with group "
                             f"id(s) {', '.join(map(str, sorted(set(strays.values()))))}, not the member's {gid}")
    return set(assigned) | listening_ports(pids)


def listening_ports(pids: list[int]) -> set[int]:
    """The TCP ports these processes listen on (IPv4 and IPv6)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def cut(table: str, member_gid_: int, member_ports: set[int], peer_gids: set[int], peer_ports: set[int]) -> str:
    """Install the partition; the nft script it applied (for the report)."""
    if not member_ports or not peer_ports or not peer_gids:
        raise PartitionError("nothing to cut: the member or its peers listen on no port")
    heal(table)
    script = (f"table inet {table} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n"
              f"    oifname \"lo\" meta skgid {member_gid_} tcp dport {_set(peer_ports)} drop\n"
              f"    oifname \"lo\" meta skgid {_set(peer_gids)} tcp dport {_set(member_ports)} drop\n  }}\n}}\n")
    _nft(["-f", "-"], script)
    return script


def heal(table: str) -> bool:
    """Remove the partition (and a stale one a killed drill left); whether there was one."""
    if not active(table):
        return False
    _nft(["delete", "table", "inet", table])
    return True


def active(table: str) -> bool:
    return shutil.which("nft") is not None and subprocess.run(
        ["nft", "list", "table", "inet", table], capture_output=True).returncode == 0


# Connects to 127.0.0.1 at every port given, at once, and prints each one's outcome as JSON.
_PROBE = """
import errno, json, select, socket, sys, time
timeout, ports, out, pending = float(sys.argv[1]), [int(p) for p in sys.argv[2:]], {}, {}
for port in ports:
    s = socket.socket(); s.setblocking(False)
    code = s.connect_ex(("127.0.0.1", port))
    if code in (0, errno.EINPROGRESS):
        pending[s] = port
    else:
        out[port] = errno.errorcode.get(code, str(code)); s.close()
deadline = time.monotonic() + timeout
while pending and time.monotonic() < deadline:
    _, ready, _ = select.select([], list(pending), [], max(0.0, deadline - time.monotonic()))
    for s in ready:
        code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        out[pending.pop(s)] = "connected" if code == 0 else errno.errorcode.get(code, str(code)); s.close()
for s, port in pending.items():
    out[port] = "timeout"; s.close()
print(json.dumps(out))
"""
BLOCKED = ("timeout", "EPERM")  # a dropped SYN: never answered, or refused by the filter itself


def probe_start(gid: int | None, ports: set[int], timeout_s: float = 1.5) -> subprocess.Popen:
    """Start connecting to `ports` from a socket filed under group id `gid` (None: ours, as
    a client); `probe_result` collects the outcomes."""
    kwargs = {} if gid is None else {"group": gid, "extra_groups": []}
    return subprocess.Popen([sys.executable, "-I", "-c", _PROBE, str(timeout_s), *map(str, sorted(ports))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def probe_result(proc: subprocess.Popen) -> dict[int, str]:
    """Each port's outcome: "connected", "timeout", or the errno's name ("ECONNREFUSED", ...)."""
    out, errors = proc.communicate(timeout=30)
    if proc.returncode != 0:
        raise PartitionError(f"the reachability probe failed: {errors.strip()[-300:]}")
    return {int(port): outcome for port, outcome in json.loads(out).items()}


def _set(values) -> str:
    return "{ " + ", ".join(str(v) for v in sorted(values)) + " }"


def _nft(args: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise PartitionError(f"nft {' '.join(args)} failed: {done.stderr.strip()[:300]}")
