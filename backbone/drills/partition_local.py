"""Real network partitions on the local platform.

Every member of a local environment runs with a group id of its own (`member_gid`), so the
kernel knows which member each socket belongs to even though all of them share loopback.
A partition is one nftables table per environment, `inet backbone_partition_<id>`, in the
output hook of `lo`:

    the isolated member's sockets -> any port its peers listen on: dropped
    its peers' sockets            -> any port it listens on:        dropped

That cuts every TCP connection between them in both directions (one direction of each is
enough to stall it) while clients, which run with other group ids, still reach every member:
the isolated one too, as a client on its side of a real partition would. Listening ports are
read from the kernel (/proc) for each member's whole process tree, so Patroni's REST API and
the postmaster, or Kafka's controller listener, are covered without a list kept by hand.
Healing deletes the table; `local down` and every `drill run` delete a stale one first, so a
killed drill leaves nothing behind. Only loopback (`oifname "lo"`) is ever filtered.
"""
from __future__ import annotations

import os
import shutil
import subprocess
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


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


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


def _set(values) -> str:
    return "{ " + ", ".join(str(v) for v in sorted(values)) + " }"


def _nft(args: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise PartitionError(f"nft {' '.join(args)} failed: {done.stderr.strip()[:300]}")
