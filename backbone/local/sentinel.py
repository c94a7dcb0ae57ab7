"""The HA Redis topology of `backbone local up --ha`: a primary (`redis-1`), a replica
(`redis-2`) and three Sentinels (`sentinel-1..3`, quorum 2), as the staging stack declares it.

Configuration comes from the generators (`redis_conf`, `sentinel_conf`, `redis_acl_file`);
secrets live only in 0600 files inside the 0700 state dir, never on a command line. Secure
(the default): TLS only, ACL users, Sentinels with a password (`redis_access`).
Sentinel and Redis rewrite their own config files at failover (new master, replicaof), so
those files stay in the state dir, where a restarted process picks up what was learnt.
"""
from __future__ import annotations


import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from .. import serviceconfig as sc
from . import redis_access as access
if TYPE_CHECKING:
    from .pki import Authority
from .binaries import Binaries
from .services import LocalError, _alive, _wait, free_port

kinds = ("redis", "sentinel")
MASTER_NAME = "backbone"
REDIS_NODES = ("redis-1", "redis-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
QUORUM = 2
# Fast failure detection for a local machine: a master silent for 1 s is subjectively down.
DOWN_AFTER_MS = 1000


def prepare(state_dir: Path, bins: Binaries, passwords: dict[str, str],
            ca: "Authority | None" = None) -> dict[str, dict[str, Any]]:
    ports = {name: free_port() for name in REDIS_NODES}
    master_port = ports[REDIS_NODES[0]]
    services: dict[str, dict[str, Any]] = {}
    tls_mark = {"ca": str(ca.cert_path)} if ca else {}
    for name in REDIS_NODES:
        home = state_dir / name
        (home / "data").mkdir(parents=True, exist_ok=True)
        include = access.server_auth(home, passwords, ca, sentinel=True)
        replica_of = None if name == REDIS_NODES[0] else ("127.0.0.1", master_port)
        conf = sc.redis_conf(sc.RedisSettings(port=ports[name], bind="127.0.0.1", data_dir=str(home / "data"),
                                              maxmemory="128mb", replica_of=replica_of,
                                              tls=access.tls_files(ca, name, home) if ca else None,
                                              acl_file=str(home / "users.acl") if ca else None))
        access.private(home / "redis.conf", conf + include)
        services[name] = {"kind": "redis", "port": ports[name], "home": str(home), "user": None,
                          "log": str(state_dir / "logs" / f"{name}.log"),
                          "argv": [str(bins.redis_server), str(home / "redis.conf")], **tls_mark}
    for name in SENTINELS:
        home = state_dir / name
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        settings = sc.SentinelSettings(port=port, bind="127.0.0.1", master_name=MASTER_NAME,
                                       master_host="127.0.0.1", master_port=master_port, quorum=QUORUM,
                                       down_after_ms=DOWN_AFTER_MS,
                                       tls=access.tls_files(ca, name, home) if ca else None)
        # Sentinel folds included lines into the file it rewrites, so the whole file is
        # private too; the include keeps the generated part free of the password.
        access.private(home / "sentinel-auth.conf", access.sentinel_auth(MASTER_NAME, passwords, ca is not None))
        access.private(home / "sentinel.conf",
                       sc.sentinel_conf(settings, str(home)) + f"include {home / 'sentinel-auth.conf'}\n")
        services[name] = {"kind": "sentinel", "port": port, "home": str(home), "user": None,
                          "log": str(state_dir / "logs" / f"{name}.log"),
                          "argv": [str(bins.redis_sentinel), str(home / "sentinel.conf")], **tls_mark}
    return services


def _info(state: dict[str, Any], name: str) -> dict[str, Any]:
    client = access.admin_client(state, state["services"][name])
    try:
        return client.info("replication")
    finally:
        client.close()


def _sentinel_ok(state: dict[str, Any], name: str, replicas: int) -> bool:
    """Knows the master, sees `replicas` replicas and enough peers for a failover."""
    client = access.sentinel_client(state, state["services"][name])
    try:
        if not client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME):
            return False
        client.execute_command("SENTINEL", "CKQUORUM", MASTER_NAME)  # raises ResponseError when short
        # without the replica known, a failover right after start-up would find no candidate
        known = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
        return len(known) >= replicas
    finally:
        client.close()


def ready(state: dict[str, Any], names: list[str], timeout_s: float) -> float:
    services = state["services"]
    running = [n for n in REDIS_NODES if _alive(services[n])]
    started = time.monotonic()
    for name in [n for n in names if services[n]["kind"] == "redis"]:
        svc = services[name]

        def node_ready(name=name, svc=svc) -> bool:
            info = _info(state, name)
            if info["role"] != "master":
                return info.get("master_link_status") == "up"
            # A restarted old master boots as master (its file has no replicaof) until the
            # Sentinels turn it into a replica: it is ready only once they agree on its role.
            return _named_master(state) in (None, name)
        _wait(f"{name} (Redis)", node_ready, timeout_s, Path(svc["log"]), lambda svc=svc: _alive(svc))
    for name in [n for n in names if services[n]["kind"] == "sentinel"]:
        svc = services[name]
        _wait(f"{name} (Redis Sentinel)", lambda name=name: _sentinel_ok(state, name, len(running) - 1),
              max(1.0, timeout_s - (time.monotonic() - started)), Path(svc["log"]), lambda svc=svc: _alive(svc))
    return time.monotonic() - started


def _named_master(state: dict[str, Any]) -> str | None:
    """The master the Sentinels name, or None before any Sentinel runs (the first start)."""
    if not any(_alive(state["services"][n]) for n in SENTINELS):
        return None
    return primary(state, timeout_s=1)


def contract(state: dict[str, Any]) -> dict[str, Any]:
    services = state["services"]
    return {"mode": "sentinel", "host": "127.0.0.1", "port": services[REDIS_NODES[0]]["port"],
            "sentinels": [{"host": "127.0.0.1", "port": services[n]["port"]} for n in SENTINELS],
            "master_name": MASTER_NAME, **access.contract_auth(state, services[REDIS_NODES[0]], sentinel=True)}


# --- for the drills ---------------------------------------------------------------------

def primary(state: dict[str, Any], timeout_s: float = 5) -> str:
    """The Redis service the Sentinels currently name master (the first that answers)."""
    by_port = {s["port"]: n for n, s in state["services"].items() if s["kind"] == "redis"}
    deadline = time.monotonic() + timeout_s
    errors: list[str] = []
    while True:
        for name in SENTINELS:
            client = access.sentinel_client(state, state["services"][name], timeout_s=1)
            try:
                addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                if addr and int(addr[1]) in by_port:
                    return by_port[int(addr[1])]
            except (redis.RedisError, OSError) as exc:
                errors.append(f"{name}: {type(exc).__name__}")
            finally:
                client.close()
        if time.monotonic() > deadline:
            raise LocalError(f"no Sentinel named the master within {timeout_s:g} s ({'; '.join(errors[-3:])})")
        time.sleep(0.2)


def replicas(state: dict[str, Any]) -> list[str]:
    master = primary(state)
    return [n for n in REDIS_NODES if n != master]
