"""Service configuration, generated once and used by every deploy path.

Pure functions: the docker and kubernetes components turn these into environment
variables, args and ConfigMaps; `backbone local` writes them to files and boots real
processes from them. What the stacks deploy is what CI boots.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.1.0"
# The local HA environment's Patroni (scripts/patroni/requirements.txt, installed into
# PATRONI_HOME by scripts/setup.sh). Debian's 3.0.2 overwrote the leader key when a paused
# primary resumed, demoting the promoted replica and losing the writes it had acknowledged.
PATRONI_VERSION = "4.1.5"
PATRONI_HOME = f"/opt/backbone/patroni-{PATRONI_VERSION}"

# One TimescaleDB everywhere: the local platform builds this version for this PostgreSQL
# major (scripts/setup.sh), and the stacks pin images carrying the same pair.
TIMESCALEDB_VERSION = "2.28.3"  # the newest release that supports PostgreSQL 15
POSTGRES_MAJOR = 15
# The real-engine deploy tools, built from the Go module proxy by scripts/tools/build.sh
# (versions in scripts/tools/versions.env; a unit test keeps the two equal). The Kubernetes
# provider reports PULUMI_KUBERNETES_VERSION, which the pulumi-kubernetes SDK is pinned to.
PULUMI_VERSION = "v3.276.0"
PULUMI_KUBERNETES_VERSION = "4.25.0"
KUBERNETES_VERSION = "v1.37.2"


def deploy_tool(name: str) -> Path:
    """Where scripts/tools/build.sh caches a tool: `pulumi`, `pulumi-resource-kubernetes`,
    `kube-apiserver` or `kube-controller-manager` ($BACKBONE_TOOLS, else the user's cache)."""
    folders = {"pulumi": f"pulumi-{PULUMI_VERSION}",
               "pulumi-resource-kubernetes": f"pulumi-resource-kubernetes-v{PULUMI_KUBERNETES_VERSION}",
               "kube-apiserver": f"kubernetes-{KUBERNETES_VERSION}",
               "kube-controller-manager": f"kubernetes-{KUBERNETES_VERSION}"}
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tools = Path(os.environ.get("BACKBONE_TOOLS") or cache / "backbone" / "tools")
    return tools / folders[name] / "bin" / name


# timescaledb-ha tags name the PostgreSQL minor the image was built with (pgM.m-tsX.Y.Z)
TIMESCALE_HA_POSTGRES_MINOR = 17


def timescale_images() -> dict[str, str]:
    """The pinned images, in the tag form each uses: `timescale/timescaledb` (docker: one
    server) and `timescale/timescaledb-ha` (kubernetes: ships Patroni)."""
    return {"timescale": f"timescale/timescaledb:{TIMESCALEDB_VERSION}-pg{POSTGRES_MAJOR}",
            "timescale_ha": f"timescale/timescaledb-ha:pg{POSTGRES_MAJOR}.{TIMESCALE_HA_POSTGRES_MINOR}"
                            f"-ts{TIMESCALEDB_VERSION}"}


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    host: str
    port: int  # client listener (PLAINTEXT, or SASL_SSL with KafkaSecurity)
    controller_port: int
    internal_port: int | None = None  # broker-to-broker SSL listener (with KafkaSecurity)


@dataclass(frozen=True)
class KafkaClusterSettings:
    """Cluster-wide defaults; a topic's own config overrides them."""

    default_replication_factor: int = 1
    min_insync_replicas: int = 1
    num_partitions: int = 3
    broker_session_timeout_ms: int = 9000
    broker_heartbeat_interval_ms: int = 2000
    auto_create_topics: bool = False


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and authentication of a KRaft node (docs/security.md, Kafka).

    Clients: SASL_SSL with SCRAM-SHA-512 on the client listener. Brokers and controllers:
    SSL with client certificates required (mTLS), each certificate's CN mapped to
    `User:<CN>` and those users `super_users`. `StandardAuthorizer`, nothing allowed where
    no ACL says so. Keystore and truststore are PEM files (no keytool): `keystore` holds the
    node's private key and certificate chain, `truststore` the CA."""

    keystore: str
    truststore: str
    super_users: tuple[str, ...]  # certificate CNs of the brokers (and controllers)
    sasl_mechanism: str = "SCRAM-SHA-512"
    tls_protocols: tuple[str, ...] = ("TLSv1.3", "TLSv1.2")


KAFKA_PRINCIPAL_RULES = "RULE:^CN=([^,]+)$/$1/,DEFAULT"  # a certificate's CN is its user


def _kafka_security_properties(node: KafkaNode, bind: str, sec: KafkaSecurity) -> dict[str, str]:
    if node.internal_port is None:
        raise ValueError("a secure Kafka node needs internal_port (the broker-to-broker SSL listener)")
    mech = sec.sasl_mechanism.lower()
    return {
        "listeners": f"CLIENT://{bind}:{node.port},INTERNAL://{bind}:{node.internal_port},"
                     f"CONTROLLER://{bind}:{node.controller_port}",
        "advertised.listeners": f"CLIENT://{node.host}:{node.port},INTERNAL://{node.host}:{node.internal_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
        "listener.name.client.sasl.enabled.mechanisms": sec.sasl_mechanism,
        f"listener.name.client.{mech}.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.client.ssl.client.auth": "none",
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": sec.keystore,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": sec.truststore,
        "ssl.enabled.protocols": ",".join(sec.tls_protocols),
        "ssl.protocol": sec.tls_protocols[0],
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.principal.mapping.rules": KAFKA_PRINCIPAL_RULES,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(f"User:{u}" for u in sec.super_users),
    }


def kafka_server_properties(node: KafkaNode, voters: list[KafkaNode], log_dir: str,
                            cluster: KafkaClusterSettings = KafkaClusterSettings(),
                            bind_host: str | None = None, security: KafkaSecurity | None = None) -> dict[str, str]:
    """server.properties for one combined broker+controller KRaft node.

    `bind_host` is the address listeners bind to (0.0.0.0 in containers); the node's
    `host` is what clients and peers are told to connect to. Without `security` every
    listener is PLAINTEXT (`local up --insecure`).
    """
    bind = bind_host or node.host
    internal_rf = min(3, len(voters))
    listeners = {
        "listeners": f"PLAINTEXT://{bind}:{node.port},CONTROLLER://{bind}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    } if security is None else _kafka_security_properties(node, bind, security)
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(f"{v.node_id}@{v.host}:{v.controller_port}" for v in voters),
        **listeners,
        "log.dirs": log_dir,
        "num.partitions": str(cluster.num_partitions),
        "default.replication.factor": str(min(cluster.default_replication_factor, len(voters))),
        "min.insync.replicas": str(min(cluster.min_insync_replicas, len(voters))),
        "offsets.topic.replication.factor": str(internal_rf),
        "transaction.state.log.replication.factor": str(internal_rf),
        "transaction.state.log.min.isr": str(min(2, internal_rf)),
        "auto.create.topics.enable": str(cluster.auto_create_topics).lower(),
        "broker.session.timeout.ms": str(cluster.broker_session_timeout_ms),
        "broker.heartbeat.interval.ms": str(cluster.broker_heartbeat_interval_ms),
        "group.initial.rebalance.delay.ms": "0",
    }


def render_properties(props: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in props.items())


def kafka_container_env(props: dict[str, str]) -> dict[str, str]:
    """The official apache/kafka image reads KAFKA_* variables as server properties:
    '.' becomes '_', '_' becomes '__', '-' becomes '___'."""
    def name(key: str) -> str:
        return "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()
    return {name(k): v for k, v in props.items()}


@dataclass(frozen=True)
class RedisSettings:
    port: int = 6379
    bind: str = "127.0.0.1"
    data_dir: str = "/data"
    appendonly: bool = True
    maxmemory: str = "256mb"
    maxmemory_policy: str = "allkeys-lru"
    replica_of: tuple[str, int] | None = None
    min_replicas_to_write: int = 0
    min_replicas_max_lag_s: int = 10
    tls: "RedisTLS | None" = None   # `port` becomes the TLS port, plaintext is off (port 0)
    acl_file: str | None = None     # the users (`redis_acl_file`); none: the default user only


@dataclass(frozen=True)
class RedisTLS:
    """Where a Redis server's or Sentinel's certificate, key and CA are (each platform
    mounts them at its own paths). Clients authenticate with ACL passwords, so the server
    asks for no client certificate (`tls-auth-clients no`); its certificate is also the one
    it shows as a client (replication, Sentinel links), verified against `ca_file`."""
    cert_file: str
    key_file: str
    ca_file: str
    protocols: str = "TLSv1.2 TLSv1.3"


def _tls_lines(port: int, tls: RedisTLS) -> list[str]:
    return ["port 0", f"tls-port {port}", f"tls-cert-file {tls.cert_file}", f"tls-key-file {tls.key_file}",
            f"tls-ca-cert-file {tls.ca_file}", f'tls-protocols "{tls.protocols}"', "tls-auth-clients no",
            "tls-replication yes", "tls-prefer-server-ciphers yes"]


def redis_conf(s: RedisSettings) -> str:
    """redis.conf without credentials; the password goes in through `redis_auth_conf`
    (a file only its owner reads) or a container secret, never into a ConfigMap."""
    lines = [
        *(_tls_lines(s.port, s.tls) if s.tls else [f"port {s.port}"]),
        f"bind {s.bind}",
        "protected-mode yes",
        "daemonize no",
        f"dir {s.data_dir}",
        f"appendonly {'yes' if s.appendonly else 'no'}",
        "appendfsync everysec",
        f"maxmemory {s.maxmemory}",
        f"maxmemory-policy {s.maxmemory_policy}",
        "save 900 1 300 10",
        "tcp-keepalive 60",
        f"min-replicas-to-write {s.min_replicas_to_write}",
        f"min-replicas-max-lag {s.min_replicas_max_lag_s}",
    ]
    if s.replica_of:
        lines.append(f"replicaof {s.replica_of[0]} {s.replica_of[1]}")
    if s.acl_file:
        lines.append(f"aclfile {s.acl_file}")
    return "\n".join(lines) + "\n"


def redis_auth_conf(password: str) -> str:
    """The credentials part: clients and replicas both authenticate with it."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'requirepass "{quoted}"\nmasterauth "{quoted}"\n'


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Redis ACL users (docs/security.md) ---------------------------------------------------
# The application: its key namespace only, no pub/sub channels, every data command but
# nothing dangerous or administrative (FLUSHALL, FLUSHDB, CONFIG, DEBUG, SHUTDOWN, ACL,
# REPLICAOF, KEYS, MONITOR, SAVE/BGSAVE, CLIENT KILL/LIST, ...); INFO back for the probe
# (role, memory, hit ratio), and no SCRIPT FLUSH or FUNCTION (shared server state).
REDIS_APP_RULES = ("resetchannels", "+@all", "-@dangerous", "-@admin", "+info",
                   "-script|flush", "-script|kill", "-function")
# What a replica sends its master, exactly (Redis' ACL docs).
REDIS_REPLICATION_RULES = ("resetchannels", "-@all", "+psync", "+replconf", "+ping")
# What Sentinel sends the servers it monitors, as Redis' docs list it.
REDIS_SENTINEL_RULES = ("allchannels", "-@all", "+multi", "+slaveof", "+ping", "+exec", "+subscribe",
                        "+config|rewrite", "+role", "+publish", "+info", "+client|setname", "+client|kill",
                        "+script|kill")
# The platform's own administration (readiness, faults, drills): everything.
REDIS_ADMIN_RULES = ("~*", "&*", "+@all")


@dataclass(frozen=True)
class RedisAccounts:
    """The ACL users of a Redis deployment and their passwords."""
    app_user: str
    app_password: str
    app_key_patterns: tuple[str, ...]   # e.g. ("emp:cache:*",): the cache policy's namespace
    replication_user: str
    replication_password: str
    sentinel_user: str | None = None    # the account Sentinel uses on the servers (HA only)
    sentinel_password: str | None = None
    admin_user: str | None = None       # a platform's own administration account
    admin_password: str | None = None


def _acl_password(password: str) -> str:
    """The password as its SHA-256 (`#hex`): the file never holds it in the clear."""
    import hashlib
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def redis_acl_file(a: RedisAccounts) -> str:
    """The `aclfile` of every server: the default user off, one user per duty. Passwords are
    stored hashed; still a secret (a Secret, a 0600 file): it names every account."""
    for pattern in a.app_key_patterns:
        if not pattern or any(c.isspace() for c in pattern):
            raise ValueError(f"invalid key pattern {pattern!r}")

    def user(name: str, password: str, rules: tuple[str, ...], keys: tuple[str, ...] = ()) -> str:
        return " ".join(["user", name, "reset", "on", _acl_password(password), *(f"~{k}" for k in keys), *rules])
    lines = ["user default reset off nopass -@all",
             user(a.app_user, a.app_password, REDIS_APP_RULES, a.app_key_patterns),
             user(a.replication_user, a.replication_password, REDIS_REPLICATION_RULES)]
    if a.sentinel_user and a.sentinel_password:
        lines.append(user(a.sentinel_user, a.sentinel_password, REDIS_SENTINEL_RULES))
    if a.admin_user and a.admin_password:
        lines.append(user(a.admin_user, a.admin_password, REDIS_ADMIN_RULES))
    return "\n".join(lines) + "\n"


def redis_replication_auth_conf(user: str, password: str) -> str:
    """How a replica authenticates to its master (every node: any may become a replica)."""
    return f"masteruser {user}\nmasterauth {_quoted(password)}\n"


@dataclass(frozen=True)
class SentinelSettings:
    port: int = 26379
    bind: str = "127.0.0.1"
    master_name: str = "backbone"
    master_host: str = "127.0.0.1"
    master_port: int = 6379
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 10000
    parallel_syncs: int = 1
    tls: RedisTLS | None = None  # TLS only (port 0), and TLS to the masters and other Sentinels


def sentinel_conf(s: SentinelSettings, data_dir: str) -> str:
    """sentinel.conf without the master password (see `sentinel_auth_conf`).
    Sentinel rewrites this file at run time, so it must live on a writable path."""
    return "\n".join([
        *(_tls_lines(s.port, s.tls) if s.tls else [f"port {s.port}"]),
        f"bind {s.bind}",
        "daemonize no",
        f"dir {data_dir}",
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        f"sentinel monitor {s.master_name} {s.master_host} {s.master_port} {s.quorum}",
        f"sentinel down-after-milliseconds {s.master_name} {s.down_after_ms}",
        f"sentinel failover-timeout {s.master_name} {s.failover_timeout_ms}",
        f"sentinel parallel-syncs {s.master_name} {s.parallel_syncs}",
    ]) + "\n"


def sentinel_auth_conf(master_name: str, password: str) -> str:
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'sentinel auth-pass {master_name} "{quoted}"\n'


def sentinel_secure_auth_conf(master_name: str, auth_user: str, auth_password: str, sentinel_password: str) -> str:
    """A Sentinel's credentials: its account on the servers it monitors (`auth-user`/
    `auth-pass`), the password its own clients must give (`requirepass`, the default user's)
    and the one it gives the other Sentinels (`sentinel-pass`: the same, they share it)."""
    return (f"sentinel auth-user {master_name} {auth_user}\n"
            f"sentinel auth-pass {master_name} {_quoted(auth_password)}\n"
            f"requirepass {_quoted(sentinel_password)}\n"
            f"sentinel sentinel-pass {_quoted(sentinel_password)}\n")


@dataclass(frozen=True)
class PostgresSettings:
    port: int = 5432
    listen_addresses: str = "*"
    max_connections: int = 100
    shared_buffers: str = "128MB"
    synchronous_commit: str = "on"
    wal_level: str = "replica"
    max_wal_senders: int = 10
    max_replication_slots: int = 10
    hot_standby: bool = True
    preload_timescaledb: bool = True
    # TimescaleDB's jobs (policies, the scheduler per database) are background workers, and
    # so are parallel query workers: PostgreSQL's default of 8 slots leaves jobs unstarted
    timescaledb_background_workers: int = 8
    max_parallel_workers: int = 4
    extra: dict[str, str] = field(default_factory=dict)


def postgresql_settings(s: PostgresSettings) -> dict[str, str]:
    """postgresql.conf parameters (also Patroni's `postgresql.parameters`)."""
    params = {
        "port": str(s.port),
        "listen_addresses": s.listen_addresses,
        "max_connections": str(s.max_connections),
        "shared_buffers": s.shared_buffers,
        "synchronous_commit": s.synchronous_commit,
        "wal_level": s.wal_level,
        "max_wal_senders": str(s.max_wal_senders),
        "max_replication_slots": str(s.max_replication_slots),
        "hot_standby": "on" if s.hot_standby else "off",
        "password_encryption": "scram-sha-256",
        "log_min_messages": "warning",
    }
    if s.preload_timescaledb:
        # pg_stat_statements: per-query call counts and timings, for operators (and for the
        # tests that count what the query cache saves the database)
        params["shared_preload_libraries"] = "timescaledb,pg_stat_statements"
        params["timescaledb.telemetry_level"] = "off"
        params["timescaledb.max_background_workers"] = str(s.timescaledb_background_workers)
        params["max_parallel_workers"] = str(s.max_parallel_workers)
        # + the launcher, logical replication's launcher and one spare (Timescale's sizing rule)
        params["max_worker_processes"] = str(s.timescaledb_background_workers + s.max_parallel_workers + 3)
    params.update(s.extra)
    return params


def render_postgresql_conf(params: dict[str, str]) -> str:
    # Every value may be quoted in postgresql.conf; quoting all of them avoids parse surprises.
    return "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in params.items())


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate and key and the CA that verifies its peers, as paths the process
    reads (local files, or where a Secret is mounted)."""

    cert: str
    key: str
    ca: str


def postgresql_tls_settings(tls: TlsFiles) -> dict[str, str]:
    """postgresql.conf parameters of a server that speaks TLS (1.2 at least)."""
    return {"ssl": "on", "ssl_cert_file": tls.cert, "ssl_key_file": tls.key, "ssl_ca_file": tls.ca,
            "ssl_min_protocol_version": "TLSv1.2"}


def pg_hba(network: str, replication_user: str | None = None, tls: bool = True) -> list[str]:
    """pg_hba lines: scram-sha-256 everywhere, over TLS only (`hostssl`: a plaintext connection
    matches no line and is refused) unless `tls` is False; the Unix socket (a directory only
    the server's account reads) for local administration; replication for its user only."""
    host = "hostssl" if tls else "host"
    lines = ["local all all scram-sha-256"]
    if replication_user:
        lines.append(f"{host} replication {replication_user} {network} scram-sha-256")
    return lines + [f"{host} all all {network} scram-sha-256"]


@dataclass(frozen=True)
class TimescaleRoles:
    """The accounts by duty (docs/security.md): the application's (reads and writes), the
    schema's owner (migrations, the tier switch's triggers), a reader, and the restore drill's
    (exactly CREATEDB). None of them is a superuser."""

    app: str = "backbone"
    owner: str = "backbone_owner"
    reader: str = "backbone_reader"
    restore: str = "backbone_restore"

    def attributes(self) -> dict[str, str]:
        base = "LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        return {self.owner: f"{base} NOCREATEDB", self.app: f"{base} NOCREATEDB",
                self.reader: f"{base} NOCREATEDB", self.restore: f"{base} CREATEDB"}


def timescale_privileges(r: TimescaleRoles) -> list[str]:
    """What the superuser runs in a database (template1 too: databases created later, the
    scratch ones of tests and drills, inherit it) so the tables the owner creates are usable
    by the application (read and write) and the reader (read only). Idempotent."""
    return [
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{r.owner}" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{r.app}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{r.owner}" GRANT USAGE, SELECT ON SEQUENCES TO "{r.app}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{r.owner}" GRANT SELECT ON TABLES TO "{r.reader}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{r.owner}" GRANT SELECT ON SEQUENCES TO "{r.reader}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{r.app}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{r.app}"',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{r.reader}"',
        f'GRANT CREATE ON SCHEMA public TO "{r.owner}"',
        # `migrate` and its readiness check read shared_preload_libraries (is TimescaleDB loaded)
        f'GRANT pg_read_all_settings TO "{r.owner}", "{r.app}"',
        # the timescale probe reads each replica's state and lag (pg_stat_replication's
        # columns are NULL to a role without it)
        f'GRANT pg_read_all_stats TO "{r.app}"',
        # the restore drill puts its scratch database in TimescaleDB's restoring mode
        f'GRANT SET ON PARAMETER timescaledb.restoring TO "{r.restore}"',
    ]


# A template database with TimescaleDB installed whose internal schemas and catalogue the
# restore account may write: the extension's objects belong to the bootstrap superuser in
# every database, so a non-superuser's pg_restore of a TimescaleDB dump needs them granted.
# The restore drill clones it for its scratch databases (only those: no other database is
# made from it). Connections to it are off once it is made.
RESTORE_TEMPLATE = "backbone_restore_template"
_TS_SCHEMAS = "_timescaledb_internal, _timescaledb_catalog, _timescaledb_config, _timescaledb_cache, " \
              "_timescaledb_functions"


def timescale_restore_template(r: TimescaleRoles) -> list[str]:
    """What the superuser runs in RESTORE_TEMPLATE, once, after CREATE EXTENSION timescaledb."""
    return [
        f'GRANT USAGE, CREATE ON SCHEMA {_TS_SCHEMAS} TO "{r.restore}"',
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA _timescaledb_catalog, _timescaledb_config, "
        f'_timescaledb_internal TO "{r.restore}"',
        f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA _timescaledb_catalog, _timescaledb_config '
        f'TO "{r.restore}"',
    ]


@dataclass(frozen=True)
class PatroniSettings:
    scope: str = "backbone"
    ttl: int = 20  # Patroni raises anything lower to 20
    loop_wait: int = 2
    retry_timeout: int = 4
    synchronous_mode: bool = True
    maximum_lag_on_failover: int = 1048576


def patroni_dynamic_config(p: PatroniSettings, pg: PostgresSettings) -> dict:
    """Patroni's bootstrap.dcs section: failure detection and the PostgreSQL parameters."""
    return {
        "ttl": p.ttl,
        "loop_wait": p.loop_wait,
        "retry_timeout": p.retry_timeout,
        "maximum_lag_on_failover": p.maximum_lag_on_failover,
        "synchronous_mode": p.synchronous_mode,
        # where PostgreSQL listens is each member's own `postgresql.listen`: Patroni refuses
        # (with a warning) `port` and `listen_addresses` among the cluster-wide parameters
        "postgresql": {"use_pg_rewind": True,
                       "parameters": {k: v for k, v in postgresql_settings(pg).items()
                                      if k not in ("port", "listen_addresses")}},
    }


@dataclass(frozen=True)
class PatroniMember:
    """One Patroni member: where its PostgreSQL and REST API listen, where its data lives."""

    name: str
    host: str  # the address peers and clients are told to use
    pg_port: int
    api_port: int
    data_dir: str
    bind: str = "127.0.0.1"


@dataclass(frozen=True)
class PatroniCredentials:
    superuser: str
    superuser_password: str
    replication_user: str
    replication_password: str


def patroni_config(p: PatroniSettings, pg: PostgresSettings, member: PatroniMember, dcs: dict,
                   credentials: PatroniCredentials, bin_dir: str | None = None,
                   socket_dir: str | None = None, pgpass: str | None = None,
                   hba_network: str = "127.0.0.1/32", tls: TlsFiles | None = None,
                   api_auth: tuple[str, str] | None = None) -> dict:
    """A member's whole patroni.yml. `dcs` is the DCS section as Patroni spells it, e.g.
    {"etcd3": {"hosts": ["127.0.0.1:2379"]}} (see `patroni_etcd3`) or {"kubernetes": {...}}.

    With `tls` (the member's certificate, valid for client and server use, and the CA):
    PostgreSQL speaks TLS only (hostssl), the superuser and replication connections verify
    the server (verify-full), the REST API serves https and Patroni's own calls to the other
    members' APIs (the `ctl` section) verify them and present the member's certificate.
    `api_auth` (user, password) guards the REST API's unsafe endpoints (switchover, restart).

    Carries passwords: write it where only the postgres user reads it (or a Secret)."""
    local_params: dict[str, str] = postgresql_tls_settings(tls) if tls else {}
    if socket_dir:
        local_params["unix_socket_directories"] = socket_dir
    # the member's own certificate as the client's too: libpq then never looks for one in the
    # (perhaps unreadable) home directory of the account Patroni runs as
    verify = {"sslmode": "verify-full", "sslrootcert": tls.ca, "sslcert": tls.cert, "sslkey": tls.key} if tls else {}
    postgresql: dict = {
        "listen": f"{member.bind}:{member.pg_port}",
        "connect_address": f"{member.host}:{member.pg_port}",
        "data_dir": member.data_dir,
        "authentication": {
            "superuser": {"username": credentials.superuser, "password": credentials.superuser_password,
                          **verify},
            "replication": {"username": credentials.replication_user,
                            "password": credentials.replication_password, **verify},
        },
        # scram everywhere: the replication user only for replication, nothing trusted
        "pg_hba": pg_hba(hba_network, credentials.replication_user, tls=tls is not None),
        "parameters": local_params,
    }
    if bin_dir:
        postgresql["bin_dir"] = bin_dir
    if pgpass:
        postgresql["pgpass"] = pgpass
    restapi: dict = {"listen": f"{member.bind}:{member.api_port}", "connect_address": f"{member.host}:{member.api_port}"}
    ctl: dict = {}
    if tls:
        restapi |= {"certfile": tls.cert, "keyfile": tls.key, "cafile": tls.ca}
        ctl = {"ctl": {"insecure": False, "cacert": tls.ca, "certfile": tls.cert, "keyfile": tls.key}}
    if api_auth:
        restapi["authentication"] = {"username": api_auth[0], "password": api_auth[1]}
    return {
        "scope": p.scope,
        "name": member.name,
        "restapi": restapi,
        **ctl,
        **dcs,
        "bootstrap": {
            "dcs": patroni_dynamic_config(p, pg),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums",
                       {"auth": "scram-sha-256"}],
        },
        "postgresql": postgresql,
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def etcd_args(name: str, host: str, client_port: int, peer_port: int, data_dir: str,
              tls: TlsFiles | None = None) -> list[str]:
    """Arguments of a single-node etcd (v3 API; Patroni's `etcd3` DCS speaks it). With `tls`
    (a certificate valid for server and client use, and the CA): https for clients and peers,
    and both must present a certificate the CA signed."""
    scheme = "https" if tls else "http"
    peer = f"{scheme}://{host}:{peer_port}"
    client = f"{scheme}://{host}:{client_port}"
    args = [f"--name={name}", f"--data-dir={data_dir}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={name}={peer}", "--initial-cluster-state=new",
            "--initial-cluster-token=backbone-patroni"]
    if tls:
        args += [f"--cert-file={tls.cert}", f"--key-file={tls.key}", f"--trusted-ca-file={tls.ca}",
                 "--client-cert-auth", f"--peer-cert-file={tls.cert}", f"--peer-key-file={tls.key}",
                 f"--peer-trusted-ca-file={tls.ca}", "--peer-client-cert-auth", "--cipher-suites="
                 "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
                 "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"]
    return args


def patroni_etcd3(hosts: list[str], tls: TlsFiles | None = None) -> dict:
    """Patroni's DCS section for etcd's v3 API; with `tls`, https with the client certificate
    etcd's --client-cert-auth asks for, the server verified with the CA."""
    section: dict = {"hosts": hosts}
    if tls:
        section |= {"protocol": "https", "cacert": tls.ca, "cert": tls.cert, "key": tls.key}
    return {"etcd3": section}
