"""Who may do what in a stack's services, and the security settings both platforms declare.

Accounts by duty (docs/security.md): PostgreSQL roles `backbone_owner` (owns the database
and schema: migrations, the tier switch's triggers), `backbone` (the contract's user: reads
and writes), `backbone_reader`, `backbone_restore` (CREATEDB, for the restore drill's scratch
databases), the superuser and `standby` (replication) that never reach the contract; Redis
ACL users `backbone` (its key namespaces, no admin or dangerous command), `replication`,
`sentinel`, `admin` (probes inside the pods) and `default` off; Kafka SCRAM-SHA-512
principals `admin`, `relay`, `bridge`, `drills` and `backbone`, and the brokers'
certificate (`User:kafka`) as super user.

Pure functions of the spec and of paths (files the platforms mount or upload), so both
platforms write the same settings; secrets come in as plain arguments only inside
`Output.apply`, and every text built from one goes into a Secret or an uploaded file.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

# the Redis ACL rules are the local platform's: one source for every platform
from backbone.serviceconfig import (REDIS_ADMIN_RULES, REDIS_APP_RULES, REDIS_REPLICATION_RULES,
                                    REDIS_SENTINEL_RULES)
from infra import topology as t

# PostgreSQL roles by duty (the contract's `timescale.roles`) and their password keys
OWNER, APP, READER, RESTORE = "backbone_owner", t.DATABASE_USER, "backbone_reader", "backbone_restore"
TIMESCALE_ROLES = {"owner": (OWNER, "timescale_owner_password"),
                   "reader": (READER, "timescale_reader_password"),
                   "restore": (RESTORE, "timescale_restore_password")}
SUPERUSER, REPLICATION_USER, PATRONI_API_USER = "postgres", "standby", "patroni"
TLS_MIN = "TLSv1.2"

# Kafka principals by duty (the contract's `kafka.principals`) and the contract's own user
KAFKA_PRINCIPALS = {"admin": ("admin", "kafka_admin_password"), "relay": ("relay", "kafka_relay_password"),
                    "bridge": ("bridge", "kafka_bridge_password"), "drills": ("drills", "kafka_drills_password")}
KAFKA_APP = ("backbone", "kafka_app_password")
KAFKA_SUPER_USERS = "User:kafka;User:admin"  # the brokers' certificate; admin bootstraps the ACLs
SCRAM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
KAFKA_INTERNAL_PORT = 9094  # SSL with client certificates, broker to broker

# Redis ACL users and their password keys
REDIS_APP, REDIS_REPLICATION, REDIS_SENTINEL, REDIS_ADMIN = "backbone", "replication", "sentinel", "admin"
REDIS_USERS = {REDIS_APP: "redis_password", REDIS_REPLICATION: "redis_replication_password",
               REDIS_SENTINEL: "redis_sentinel_password", REDIS_ADMIN: "redis_admin_password"}
SENTINELS = "sentinels"  # the Sentinels' own password (requirepass), by this name among the passwords
SENTINEL_CLIENT_USER = "default"  # the account clients give the Sentinels (their requirepass)


@dataclass(frozen=True)
class TlsFiles:
    """Where a container finds its CA, certificate and key."""
    ca: str
    cert: str
    key: str


def tls_files(prefix: str) -> TlsFiles:
    """`prefix` + the names of a kubernetes.io/tls Secret's keys (plus ca.crt): a directory
    with its slash (kubernetes), or a directory and a file-name prefix (docker uploads)."""
    return TlsFiles(f"{prefix}ca.crt", f"{prefix}tls.crt", f"{prefix}tls.key")


# PostgreSQL passwords as files: file name -> generated key
TIMESCALE_SECRET_FILES = {"password": "timescale_password", "owner-password": "timescale_owner_password",
                          "reader-password": "timescale_reader_password",
                          "restore-password": "timescale_restore_password",
                          "superuser-password": "timescale_superuser_password"}


# --- PostgreSQL -----------------------------------------------------------------------------

def postgres_ssl(files: TlsFiles) -> dict[str, str]:
    return {"ssl": "on", "ssl_cert_file": files.cert, "ssl_key_file": files.key, "ssl_ca_file": files.ca,
            "ssl_min_protocol_version": TLS_MIN, "password_encryption": "scram-sha-256"}


def pg_hba(replication: bool) -> list[str]:
    """Only the container's own socket (peer: the OS user is the role) and TLS with
    scram-sha-256; replication also needs a certificate the CA signed."""
    lines = ["local all all peer"]
    if replication:
        lines.append(f"hostssl replication {REPLICATION_USER} all scram-sha-256 clientcert=verify-ca")
    lines.append("hostssl all all all scram-sha-256")
    return lines


_BASE = "LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def roles_sql(secrets_prefix: str) -> str:
    """psql script run once by the superuser at bootstrap: the roles by duty, the database
    owned by the owner role, default privileges so the tables the owner creates are usable by
    the application (DML) and the reader (SELECT). Passwords are read from the mounted files
    by psql itself (never a process argument)."""
    files = {"owner": "owner-password", "app": "password", "reader": "reader-password",
             "restore": "restore-password"}
    sets = "\n".join(f"\\set {name}_pw `cat {secrets_prefix}{file}`" for name, file in files.items())
    return f"""\\set ON_ERROR_STOP on
{sets}
CREATE ROLE {OWNER} {_BASE} NOCREATEDB PASSWORD :'owner_pw';
CREATE ROLE {APP} {_BASE} NOCREATEDB PASSWORD :'app_pw';
CREATE ROLE {READER} {_BASE} NOCREATEDB PASSWORD :'reader_pw';
CREATE ROLE {RESTORE} {_BASE} CREATEDB PASSWORD :'restore_pw';
CREATE DATABASE {t.DATABASE} OWNER {OWNER};
REVOKE ALL ON DATABASE {t.DATABASE} FROM PUBLIC;
GRANT CONNECT ON DATABASE {t.DATABASE} TO {APP}, {READER}, {RESTORE};
-- migrate and validate read shared_preload_libraries (is TimescaleDB loaded)
GRANT pg_read_all_settings TO {OWNER}, {APP};
-- the timescale probe reads each replica's state and lag (pg_stat_replication)
GRANT pg_read_all_stats TO {APP};
-- the restore drill puts its scratch database in TimescaleDB's restoring mode
GRANT SET ON PARAMETER timescaledb.restoring TO {RESTORE};
\\connect {t.DATABASE}
CREATE EXTENSION IF NOT EXISTS timescaledb;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {APP}, {READER};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} GRANT USAGE, SELECT ON SEQUENCES TO {APP};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} GRANT SELECT ON SEQUENCES TO {READER};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} GRANT SELECT ON TABLES TO {READER};
"""


# --- Redis and Sentinel ---------------------------------------------------------------------

def tls_only(conf: str, port: int, files: TlsFiles) -> str:
    """A generated redis.conf / sentinel.conf with its plaintext port closed and TLS on the
    same port number: clients, replicas and Sentinels all speak TLS (TLS 1.2+). Client
    certificates are optional (clients authenticate with ACL passwords); replicas and
    Sentinels present the service's certificate anyway."""
    lines = [line for line in conf.splitlines() if not line.startswith("port ")]
    return "\n".join([f"port 0", f"tls-port {port}", f"tls-cert-file {files.cert}", f"tls-key-file {files.key}",
                      f"tls-ca-cert-file {files.ca}", "tls-auth-clients optional", "tls-replication yes",
                      'tls-protocols "TLSv1.2 TLSv1.3"', *lines]) + "\n"


def _acl_hash(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def redis_acl(passwords: dict[str, str], cache_namespace: str) -> str:
    """The ACL file (`aclfile`): SHA-256 hashes, never the passwords. The application's user
    reaches its key namespaces only and no admin or dangerous command; replication and
    Sentinel get exactly what Redis documents for them."""
    def user(name: str, rules: tuple[str, ...], keys: tuple[str, ...] = ()) -> str:
        return " ".join(["user", name, "reset", "on", _acl_hash(passwords[name]), *(f"~{k}" for k in keys), *rules])
    return "\n".join([
        "user default reset off nopass -@all",
        user(REDIS_APP, REDIS_APP_RULES, (f"{cache_namespace}:*",)),
        user(REDIS_REPLICATION, REDIS_REPLICATION_RULES),
        user(REDIS_SENTINEL, REDIS_SENTINEL_RULES),
        user(REDIS_ADMIN, REDIS_ADMIN_RULES),
    ]) + "\n"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_secret_conf(acl_path: str, replication_password: str) -> str:
    """The credentials part of redis.conf: the ACL file and how a replica authenticates."""
    return (f"aclfile {acl_path}\nmasteruser {REDIS_REPLICATION}\n"
            f"masterauth {_quoted(replication_password)}\n")


def sentinel_secret_conf(master_name: str, auth_password: str, sentinel_password: str) -> str:
    """Sentinels require their own password from clients and from each other
    (`sentinel_password`, the contract's), and log in to the Redis servers as the `sentinel`
    ACL user (`auth_password`, which no client knows)."""
    pw = _quoted(sentinel_password)
    return (f"requirepass {pw}\nsentinel sentinel-pass {pw}\n"
            f"sentinel auth-user {master_name} {REDIS_SENTINEL}\n"
            f"sentinel auth-pass {master_name} {_quoted(auth_password)}\n")


# --- Kafka ----------------------------------------------------------------------------------

def kafka_listeners(props: dict[str, str], bind: str, client_port: int, controller_port: int,
                    advertised_host: str, internal_host: str) -> dict[str, str]:
    """The generator's properties with every listener secured: CLIENT SASL_SSL (SCRAM-SHA-512),
    INTERNAL SSL with client certificates between brokers, CONTROLLER SSL with client
    certificates; StandardAuthorizer, nothing allowed without an ACL, the brokers' certificate
    (User:kafka) and the admin principal as super users. Key and certificates come from
    `kafka_tls_properties` (a Secret), appended to the file at start."""
    out = dict(props)
    out.update({
        "listeners": f"CLIENT://{bind}:{client_port},INTERNAL://{bind}:{KAFKA_INTERNAL_PORT},"
                     f"CONTROLLER://{bind}:{controller_port}",
        "advertised.listeners": f"CLIENT://{advertised_host}:{client_port},"
                                f"INTERNAL://{internal_host}:{KAFKA_INTERNAL_PORT}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": SCRAM,
        "listener.name.client.sasl.enabled.mechanisms": SCRAM,
        "listener.name.client.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.truststore.type": "PEM",
        "ssl.enabled.protocols": "TLSv1.2,TLSv1.3",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": KAFKA_SUPER_USERS,
    })
    return out


def _properties_value(pem: str) -> str:
    # a PEM block on one properties line: newlines as \n escapes, which java.util.Properties reads back
    return pem.strip().replace("\n", "\\n")


def kafka_tls_properties(cert_pem: str, key_pem: str, ca_pem: str) -> str:
    """The secret part of server.properties: the brokers' key and chain and the CA, inline
    (PEM keystore: no keytool, no keystore password)."""
    return (f"ssl.keystore.key={_properties_value(key_pem)}\n"
            f"ssl.keystore.certificate.chain={_properties_value(cert_pem)}\n"
            f"ssl.truststore.certificates={_properties_value(ca_pem)}\n")


def scram_credential(user: str, password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """`kafka-storage format --add-scram` argument with the salted password (RFC 5802's
    SaltedPassword), so the broker never holds the password itself. The salt is derived from
    the password and the user, so every run declares the same text (no perpetual diff)."""
    salt = hmac.new(password.encode(), f"backbone-scram-salt:{user}".encode(), hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"{SCRAM}=[name={user},salt=\"{base64.b64encode(salt).decode()}\","
            f"saltedpassword=\"{base64.b64encode(salted).decode()}\",iterations={iterations}]")


def kafka_scram_args(passwords: dict[str, str]) -> str:
    """One `--add-scram` argument per line, for the start script (`principal -> password`)."""
    return "".join(scram_credential(user, pw) + "\n" for user, pw in sorted(passwords.items()))


def kafka_credential_files(passwords: dict[str, str], cert: str, key: str, ca: str) -> dict[str, str]:
    """The brokers' secret files: the TLS part of server.properties and the SCRAM credentials
    (salted: the brokers never hold a password)."""
    return {"tls.properties": kafka_tls_properties(cert, key, ca), "scram-credentials": kafka_scram_args(passwords)}


def kafka_start_script(config_dir: str, secrets_dir: str, work_dir: str, log_dir: str, per_pod: str) -> str:
    """Assemble server.properties (mounted template + this node's lines + the Secret's TLS
    part, mode 0600), format the log directory once with the SCRAM credentials, start.
    `per_pod`: shell lines that echo the node's own properties (node.id, advertised.listeners)."""
    return f"""#!/bin/sh
set -eu
umask 077
mkdir -p {work_dir}
PROPS={work_dir}/server.properties
{{
  cat {config_dir}/server.properties
{per_pod}
  cat {secrets_dir}/tls.properties
}} > "$PROPS"
# the probes' client: SSL with the brokers' own certificate on the INTERNAL listener
{{ echo "security.protocol=SSL"; echo "ssl.keystore.type=PEM"; echo "ssl.truststore.type=PEM";
   cat {secrets_dir}/tls.properties; }} > {work_dir}/probe.properties
if [ ! -f {log_dir}/meta.properties ]; then
  set --
  while IFS= read -r credential; do [ -n "$credential" ] && set -- "$@" --add-scram "$credential"; done \\
    < {secrets_dir}/scram-credentials
  /opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$(cat {secrets_dir}/cluster-id)" \\
    --config "$PROPS" "$@"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$PROPS"
"""


def kafka_probe(port: int, work_dir: str) -> str:
    return (f"/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:{port} "
            f"--command-config {work_dir}/probe.properties >/dev/null")
