"""How each local service is prepared, started and judged ready.

Every service boots from the configuration `backbone.serviceconfig` generates, the
same configuration the docker and kubernetes stacks deploy.
"""
from __future__ import annotations


import base64
import os
import pwd
import random
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any


from .. import serviceconfig as sc
from ..errors import BackboneError
from ..clients.kafka import NodeAccess, node_admin
if TYPE_CHECKING:
    from .pki import Authority
from .binaries import Binaries
from .processes import is_ours, run_as, tail

PG_USER = "postgres"  # PostgreSQL refuses to run as root


class LocalError(BackboneError, RuntimeError):
    """A local-environment failure with a message meant for the operator (exit 1)."""


class LocalUsageError(LocalError):
    """The request itself is wrong: unknown service, no environment, missing binaries (exit 2)."""

    exit_code = 2


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port nothing listens on, never the same one twice in this process.

    Ports come from below the kernel's ephemeral range: a port bound and released there can be
    handed out again by the next `bind(0)` (two brokers once got the same port) or taken by an
    outgoing connection before the service binds it."""
    low = _ephemeral_range()[0]
    first, last = (20000, low - 1) if low > 21000 else (low, 65535)
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(first, last)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise LocalError(f"no free loopback port found between {first} and {last}")


def _wait(what: str, ready, timeout_s: float, log: Path, alive=lambda: True) -> float:
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout_s:
        if not alive():
            raise LocalError(f"{what} exited during start-up; last lines of {log}:\n{tail(log)}")
        try:
            if ready():
                return time.monotonic() - started
        except Exception as exc:  # not ready yet; keep the last reason for the error
            last = exc
        time.sleep(0.2)
    reason = f" (last error: {type(last).__name__})" if last else ""
    raise LocalError(f"{what} did not become ready within {timeout_s:g} s{reason}; "
                     f"last lines of {log}:\n{tail(log)}")


def pg_user() -> str | None:
    return PG_USER if os.geteuid() == 0 else None


# --- Timescale (PostgreSQL 15 + TimescaleDB, built by scripts/setup.sh) ------------------

def prepare_timescale(state_dir: Path, bins: Binaries, passwords: dict[str, str],
                      ca: "Authority | None" = None) -> dict[str, Any]:
    """One PostgreSQL server; with `ca`, TLS only (hostssl) and the accounts of `pgaccess`."""
    from . import pgaccess
    pgaccess.make_passwords(passwords, ca is not None)
    superuser, password = pgaccess.superuser(passwords, ca is not None)
    port = free_port()
    # Root's paths may not be readable by the postgres user: the cluster lives in its own
    # temp dir, owned by that user, recorded in the state so `down` removes it.
    home = Path(tempfile.mkdtemp(prefix="backbone-pg-"))
    data = home / "data"
    pwfile = home / "pwfile"
    pwfile.write_text(password + "\n")
    user = pg_user()
    if user:
        uid = pwd.getpwnam(user).pw_uid
        for path in (home, pwfile):
            os.chown(path, uid, -1)
    os.chmod(home, 0o700)
    os.chmod(pwfile, 0o600)
    proc = run_as([str(bins.pg_bin / "initdb"), "-D", str(data), "-U", superuser, f"--pwfile={pwfile}",
                   "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"], user)
    pwfile.unlink()
    if proc.returncode != 0:
        raise LocalError(f"initdb failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    params = sc.postgresql_settings(sc.PostgresSettings(port=port, listen_addresses="127.0.0.1"))
    params["unix_socket_directories"] = str(home)
    extra: dict[str, Any] = {}
    if ca is not None:
        tls = pgaccess.server_tls(ca, "timescale", home, user)
        params |= sc.postgresql_tls_settings(tls)
        (data / "pg_hba.conf").write_text("".join(f"{line}\n" for line in sc.pg_hba("127.0.0.1/32")))
        extra["ca"] = tls.ca
    (data / "backbone.conf").write_text(sc.render_postgresql_conf(params))
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\ninclude 'backbone.conf'\n")
    if user:
        os.chown(data / "backbone.conf", pwd.getpwnam(user).pw_uid, -1)
    return {"kind": "timescale", "port": port, "home": str(home), "outside_state_dir": str(home), "user": user,
            "log": str(state_dir / "logs" / "timescale.log"),
            "argv": [str(bins.pg_bin / "postgres"), "-D", str(data)], **extra}


def timescale_ready(state: dict[str, Any], timeout_s: float) -> float:
    from . import pgaccess
    svc = state["services"]["timescale"]

    def ready() -> bool:
        pgaccess.bootstrap(state, svc["port"], 2)
        return True
    return _wait("timescale (PostgreSQL)", ready, timeout_s, Path(svc["log"]), lambda: _alive(svc))


# --- Redis ------------------------------------------------------------------------------

def prepare_redis(state_dir: Path, bins: Binaries, passwords: dict[str, str],
                  ca: "Authority | None" = None) -> dict[str, Any]:
    from . import redis_access
    port = free_port()
    home = state_dir / "redis"
    (home / "data").mkdir(parents=True, exist_ok=True)
    include = redis_access.server_auth(home, passwords, ca, sentinel=False)
    conf = sc.redis_conf(sc.RedisSettings(
        port=port, bind="127.0.0.1", data_dir=str(home / "data"), maxmemory="128mb",
        tls=redis_access.tls_files(ca, "redis", home) if ca else None,
        acl_file=str(home / "users.acl") if ca else None))
    redis_access.private(home / "redis.conf", conf + include)
    return {"kind": "redis", "port": port, "home": str(home), "user": None,
            "log": str(state_dir / "logs" / "redis.log"),
            "argv": [str(bins.redis_server), str(home / "redis.conf")],
            **({"ca": str(ca.cert_path)} if ca else {})}


def redis_ready(state: dict[str, Any], svc: dict[str, Any], timeout_s: float) -> float:
    from .redis_access import admin_client

    def ready() -> bool:
        client = admin_client(state, svc)
        try:
            return bool(client.ping())
        finally:
            client.close()
    return _wait("redis", ready, timeout_s, Path(svc["log"]), lambda: _alive(svc))


# --- Kafka (KRaft, combined broker + controller nodes) ----------------------------------

def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of a random UUID that does not start with '-'
    (command-line tools would read such an id as an option; Kafka's own generator skips them)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def prepare_kafka(state_dir: Path, bins: Binaries, brokers: int, passwords: dict[str, str] | None = None,
                  ca: "Authority | None" = None) -> list[dict[str, Any]]:
    """The KRaft nodes, formatted; with `ca`, secured (local/kafka.py): SASL_SSL for clients,
    mTLS between brokers and controllers, every principal's SCRAM credential made at format
    time. Without it (--insecure, a drill's scratch cluster) every listener is PLAINTEXT."""
    from . import kafka as security
    nodes = [sc.KafkaNode(i, "127.0.0.1", free_port(), free_port(), free_port() if ca else None)
             for i in range(1, brokers + 1)]
    # tuned failure detection: a dead broker is fenced after 3 s, so its partitions get a
    # new leader quickly (the drills measure exactly this)
    cluster = sc.KafkaClusterSettings(default_replication_factor=min(3, brokers),
                                      min_insync_replicas=2 if brokers >= 3 else 1,
                                      broker_session_timeout_ms=3000, broker_heartbeat_interval_ms=500)
    cluster_id = new_cluster_id()
    scram = security.scram_arguments(passwords if passwords is not None else {}) if ca else []
    services = []
    for node in nodes:
        name = "kafka" if brokers == 1 else f"kafka-{node.node_id}"
        home = state_dir / name
        (home / "data").mkdir(parents=True, exist_ok=True)
        tls = security.node_security(ca, home, node, nodes) if ca else None
        props = sc.kafka_server_properties(node, nodes, str(home / "data"), cluster, security=tls)
        (home / "server.properties").write_text(sc.render_properties(props))
        log = state_dir / "logs" / f"{name}.log"
        (home / "log4j2.properties").write_text(_log4j2(state_dir / "logs" / f"{name}.server.log"))
        java = [str(bins.java), "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}", "-cp", f"{bins.kafka_libs}/*"]
        # `--cluster-id=ID` in one word: a base64 id may begin with "-" (1 start in 64), which
        # `-t ID` would hand to the option parser as another flag
        fmt = run_as(java + ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                             "-c", str(home / "server.properties"), "--ignore-formatted"] + scram, None)
        if fmt.returncode != 0:
            text = (fmt.stderr or fmt.stdout).strip()[-800:]
            for secret in (passwords or {}).values():
                text = text.replace(secret, "***")
            raise LocalError(f"formatting Kafka storage for {name} failed: {text}")
        services.append({"kind": "kafka", "name": name, "node_id": node.node_id, "port": node.port,
                         "controller_port": node.controller_port, "home": str(home), "user": None,
                         "log": str(log), "argv": java + ["kafka.Kafka", str(home / "server.properties")]}
                        | ({"internal_port": node.internal_port} if ca else {}))
    return services


def _log4j2(path: Path) -> str:
    return "\n".join([
        "rootLogger.level=INFO", "rootLogger.appenderRef.file.ref=FILE",
        "appender.file.type=File", "appender.file.name=FILE", f"appender.file.fileName={path}",
        "appender.file.layout.type=PatternLayout", "appender.file.layout.pattern=[%d] %p %m (%c)%n",
        "logger.kafka.name=kafka", "logger.kafka.level=WARN",
        "logger.apache.name=org.apache.kafka", "logger.apache.level=WARN", ""])


def kafka_ready(nodes: list[dict[str, Any]], timeout_s: float, access: "NodeAccess | None" = None) -> float:
    bootstrap = ",".join(f"127.0.0.1:{n['port']}" for n in nodes)
    expected, log = len(nodes), Path(nodes[0]["log"])
    admin = node_admin(bootstrap, 2, access=access)

    def ready() -> bool:
        return len(admin.list_topics(timeout=2).brokers) >= expected
    return _wait(f"kafka ({expected} broker(s))", ready, timeout_s, log, lambda: all(_alive(n) for n in nodes))


def _alive(svc: dict[str, Any]) -> bool:
    return is_ours(svc.get("pid"), svc.get("start_ticks"))


class SingleTimescale:
    """One PostgreSQL server (the default topology)."""
    kinds = ("timescale",)

    @staticmethod
    def prepare(state_dir: Path, bins: Binaries, passwords: dict[str, str],
                ca: "Authority | None" = None) -> dict[str, dict[str, Any]]:
        return {"timescale": prepare_timescale(state_dir, bins, passwords, ca)}

    @staticmethod
    def ready(state: dict[str, Any], names: list[str], timeout_s: float) -> float:
        return timescale_ready(state, timeout_s)

    @staticmethod
    def contract(state: dict[str, Any]) -> dict[str, Any]:
        from . import pgaccess
        return pgaccess.contract(state, "127.0.0.1", state["services"]["timescale"]["port"])


class SingleRedis:
    """One Redis server (the default topology)."""
    kinds = ("redis",)

    @staticmethod
    def prepare(state_dir: Path, bins: Binaries, passwords: dict[str, str],
                ca: "Authority | None" = None) -> dict[str, dict[str, Any]]:
        return {"redis": prepare_redis(state_dir, bins, passwords, ca)}

    @staticmethod
    def ready(state: dict[str, Any], names: list[str], timeout_s: float) -> float:
        return redis_ready(state, state["services"]["redis"], timeout_s)

    @staticmethod
    def contract(state: dict[str, Any]) -> dict[str, Any]:
        from .redis_access import contract_auth
        svc = state["services"]["redis"]
        return {"host": "127.0.0.1", "port": svc["port"], **contract_auth(state, svc, sentinel=False)}

