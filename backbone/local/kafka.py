"""The local platform's Kafka security: the nodes' certificates and PEM keystores, the SCRAM
users made at format time, the principals by duty and their declared ACLs, and how the
platform itself reaches its brokers (by address, from state.json).

Principals (docs/security.md, Kafka): the contract's own user (the application: the probe's
canary, DESCRIBE on the declared topics, nothing else), `admin` (topics and ACLs), `relay`
(writes the ingest topics), `bridge` (reads them, in its groups), `drills` (their topic and
group; reads the declared topics and every group's offsets for the backup drill). The
brokers are super users by their certificates (CN `kafka-broker-N`); the only thing local
up does with that identity is grant the admin principal its own ACLs, and everything else
is applied as the admin principal.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import serviceconfig as sc
from ..clients.kafka import NodeAccess
from ..contract import DataPolicy
from .pki import secret_for

if TYPE_CHECKING:
    from .pki import Authority

MECHANISM = "SCRAM-SHA-512"
APP_USER = "backbone"  # the contract's own sasl_username
# duty -> SASL user; each one's password is state["passwords"]["kafka.<duty>"]
PRINCIPALS = {"admin": "backbone-admin", "relay": "backbone-relay", "bridge": "backbone-bridge",
              "drills": "backbone-drills"}
CANARY_TOPIC = "backbone.canary"  # probes/kafka.py: the canary's topic and group
CANARY_GROUP = "backbone-canary"
DRILL_TOPIC = "backbone.drill"  # drills/workloads.py
DRILL_GROUP = "backbone-drill"
DRILL_PREFIX = "drill."  # topics and groups a drill makes for itself (drill.backup.*, ...)
BACKUP_GROUP_PREFIX = "backbone-backup-"  # drills/backup_kafka_io.py: assigned, never joined


def broker_cn(node_id: int) -> str:
    return f"kafka-broker-{node_id}"


def password_key(duty: str | None) -> str:
    return "kafka" if duty is None else f"kafka.{duty}"


def users(passwords: dict[str, str]) -> dict[str, str]:
    """SASL user -> password, every principal's (made on first use, kept in state.json)."""
    out = {APP_USER: secret_for(passwords, password_key(None))}
    for duty, user in PRINCIPALS.items():
        out[user] = secret_for(passwords, password_key(duty))
    return out


def scram_arguments(passwords: dict[str, str]) -> list[str]:
    """`kafka-storage format` arguments adding every principal's SCRAM credential."""
    args: list[str] = []
    for user, password in users(passwords).items():
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    return args


def node_security(ca: "Authority", home: Path, node: sc.KafkaNode, nodes: list[sc.KafkaNode]) -> sc.KafkaSecurity:
    """The node's certificate (server and client: the brokers' mTLS), its PEM keystore (private
    key then certificate, mode 0600) and the properties' security part."""
    issued = ca.issue(broker_cn(node.node_id), server=True, client=True, directory=home / "tls")
    keystore = home / "tls" / "keystore.pem"
    fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(issued.key.read_text() + issued.cert.read_text())
    return sc.KafkaSecurity(keystore=str(keystore), truststore=str(ca.cert_path),
                            super_users=tuple(broker_cn(n.node_id) for n in nodes), sasl_mechanism=MECHANISM)


def _acl(user: str, resource: str, name: str, ops: list[str], pattern: str = "literal") -> dict[str, Any]:
    return {"principal": f"User:{user}", "resource_type": resource, "name": name, "pattern_type": pattern,
            "operations": ops}


def default_acls(topics: list[dict[str, Any]], data: DataPolicy = DataPolicy()) -> list[dict[str, Any]]:
    """Each principal's ACLs, exactly what its duty needs."""
    ingest = "ingest."  # the declared topics' prefix (environment.default_topics)
    if any(not t["name"].startswith(ingest) for t in topics):
        raise ValueError(f"every declared topic of the local platform starts with {ingest!r}")
    admin, relay, bridge, drills = (PRINCIPALS[d] for d in ("admin", "relay", "bridge", "drills"))
    return [
        # topics apply: create / grow / configure / delete topics, read and write ACLs
        _acl(admin, "topic", "*", ["create", "delete", "alter", "alter_configs", "describe", "describe_configs"]),
        _acl(admin, "cluster", "kafka-cluster", ["alter", "describe"]),
        # the relay: writes the ingest topics (WRITE on a topic lets its producer be idempotent)
        _acl(relay, "topic", ingest, ["write", "describe"], "prefixed"),
        # the bridge: reads them, in its consumer group (and groups named after it)
        _acl(bridge, "topic", ingest, ["read", "describe"], "prefixed"),
        _acl(bridge, "group", data.consumer_group, ["read", "describe"], "prefixed"),
        # the drills: their own topic and group; the backup drill reads the declared topics,
        # their configurations and every group's committed offsets
        _acl(drills, "topic", DRILL_TOPIC, ["create", "read", "write", "describe"]),
        _acl(drills, "group", DRILL_GROUP, ["read", "describe"]),
        _acl(drills, "topic", DRILL_PREFIX, ["create", "delete", "read", "write", "describe", "describe_configs"],
             "prefixed"),
        _acl(drills, "group", DRILL_PREFIX, ["read", "describe"], "prefixed"),
        _acl(drills, "topic", ingest, ["read", "describe", "describe_configs"], "prefixed"),
        _acl(drills, "group", BACKUP_GROUP_PREFIX, ["read", "describe"], "prefixed"),
        _acl(drills, "group", "*", ["describe"]),
        # the application's own user: the probe's canary, and seeing the declared topics
        _acl(APP_USER, "topic", CANARY_TOPIC, ["read", "write", "describe"]),
        _acl(APP_USER, "group", CANARY_GROUP, ["read", "describe"]),
        _acl(APP_USER, "topic", ingest, ["describe"], "prefixed"),
    ]


def contract_part(passwords: dict[str, str], ca_pem: str | None, topics: list[dict[str, Any]]) -> dict[str, Any]:
    """What the outputs contract says of Kafka's security (nothing on an --insecure environment)."""
    if ca_pem is None:
        return {}
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM, "sasl_username": APP_USER,
            "sasl_password": passwords[password_key(None)], "ca_pem": ca_pem,
            "principals": {duty: {"user": user, "password": passwords[password_key(duty)]}
                           for duty, user in PRINCIPALS.items()},
            "acls": default_acls(topics)}


def secure(state: dict[str, Any]) -> bool:
    return not state.get("insecure") and any(s.get("internal_port") for s in state["services"].values()
                                             if s["kind"] == "kafka")


def node_access(state_dir: Path, state: dict[str, Any]) -> NodeAccess | None:
    """The admin principal, for the platform's own calls to its brokers by address (readiness,
    the drills' per-broker views); None on an --insecure environment."""
    if not secure(state):
        return None
    return NodeAccess(ca_pem=(Path(state_dir) / "tls" / "ca.pem").read_text(), username=PRINCIPALS["admin"],
                      password=state["passwords"][password_key("admin")], mechanism=MECHANISM)


def super_access(state_dir: Path, state: dict[str, Any]) -> tuple[str, NodeAccess] | None:
    """(bootstrap, access) as a broker itself (its certificate, on the brokers' mTLS
    listener): a super user, used only to grant the admin principal its own ACLs."""
    if not secure(state):
        return None
    nodes = [s for s in state["services"].values() if s["kind"] == "kafka"]
    tls = Path(nodes[0]["home"]) / "tls"
    name = broker_cn(nodes[0]["node_id"])
    bootstrap = ",".join(f"127.0.0.1:{n['internal_port']}" for n in nodes)
    return bootstrap, NodeAccess(ca_pem=(Path(state_dir) / "tls" / "ca.pem").read_text(),
                                 cert_file=str(tls / f"{name}.pem"), key_file=str(tls / f"{name}.key"))


def grant_admin(contract, state_dir: Path, state: dict[str, Any], timeout_s: float) -> int:
    """Grant the admin principal its own declared ACLs as a broker (a super user): the one
    thing the brokers' identity is used for. The number of bindings created."""
    from ..clients.kafka import node_admin
    from ..topics.acls import apply_acls, observe_acls, plan_acls
    from ..topics.admin import CountingAdmin
    from .services import LocalError
    found = super_access(state_dir, state)
    kafka = contract.kafka
    if found is None or kafka is None or "admin" not in kafka.principals:
        return 0
    bootstrap, access = found
    mine = f"User:{kafka.principals['admin'].user}"
    specs = [a for a in kafka.acls if a.principal == mine]
    if not specs:
        return 0
    admin = CountingAdmin(kafka, timeout_s, node_admin(bootstrap, timeout_s, access=access))
    outcome = apply_acls(admin, plan_acls(specs, [b for b in observe_acls(admin) if b.principal == mine]))
    if outcome.errors:
        raise LocalError("granting the Kafka admin principal its ACLs failed: "
                         + "; ".join(f"{k}: {v}" for k, v in outcome.errors.items()))
    return outcome.created
