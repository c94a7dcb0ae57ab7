"""TimescaleDB on Kubernetes: Patroni-managed members of the timescaledb-ha image.

Patroni keeps its leader lock in the Kubernetes API (no etcd), so the pods' ServiceAccount
may manage endpoints, configmaps, services and pods of the namespace. Patroni labels the
leader `role=primary` and the standbys `role=replica`; the client Services select on that
label, so they follow a failover by themselves. The failure-detection and PostgreSQL
settings are the generator's `patroni_dynamic_config`, in a ConfigMap.
"""
from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from backbone.serviceconfig import patroni_dynamic_config

from infra import generated, security, service_settings
from infra import topology as t
from infra.kubernetes import common
from infra.spec import StackSpec

COMPONENT = "timescale"
POSTGRES_UID = 1000  # `postgres` user of the timescaledb-ha image
PGROOT = "/home/postgres/pgdata"
# A subdirectory: PostgreSQL refuses a data directory that holds a volume's lost+found.
DATA_DIR = f"{PGROOT}/data"
CONFIG_DIR = "/etc/patroni"
SUPERUSER, REPLICATION_USER, PATRONI_API_USER = security.SUPERUSER, security.REPLICATION_USER, security.PATRONI_API_USER
ROLE_LABEL, PRIMARY, REPLICA = "role", "primary", "replica"


SECRETS_DIR, TLS_DIR = "/etc/backbone/secrets", "/etc/backbone/tls"
TLS = security.tls_files(f"{TLS_DIR}/")
RUNTIME_CONFIG = "/tmp/patroni.yaml"  # the config with its passwords, written 0600 at start
# Secret `timescale-credentials`: file name -> the generated key it holds
CREDENTIAL_FILES = {**security.TIMESCALE_SECRET_FILES,
                    "replication-password": "timescale_replication_password",
                    "patroni-api-password": "patroni_api_password"}


def patroni_config(spec: StackSpec) -> dict:
    """patroni.yaml without a password (a ConfigMap); the start script adds them from the
    mounted Secret (`start_script`)."""
    member_host = f"$POD_NAME.{t.headless(t.TIMESCALE)}.{spec.namespace}.svc.cluster.local"
    client_tls = {"sslmode": "verify-full", "sslrootcert": TLS.ca, "sslcert": TLS.cert, "sslkey": TLS.key}
    return {
        "bootstrap": {
            "dcs": patroni_dynamic_config(service_settings.patroni(spec), service_settings.postgres(spec)),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums", {"auth": "scram-sha-256"}],
            "post_bootstrap": f"{CONFIG_DIR}/post-bootstrap.sh",
        },
        "postgresql": {
            "pg_hba": security.pg_hba(replication=True),
            "parameters": security.postgres_ssl(TLS),
            "authentication": {
                "superuser": {"username": SUPERUSER},
                # replicas verify the leader's certificate and present theirs (clientcert=verify-ca)
                "replication": {"username": REPLICATION_USER, **client_tls},
            },
        },
        "restapi": {
            "listen": f"0.0.0.0:{t.PATRONI_API_PORT}",
            "certfile": TLS.cert, "keyfile": TLS.key, "cafile": TLS.ca,
            # unsafe endpoints (switchover, failover, restart, config) need this account
            "authentication": {"username": PATRONI_API_USER},
        },
        # patronictl and member-to-member calls: https, the CA verified
        "ctl": {"insecure": False, "cacert": TLS.ca, "certfile": TLS.cert, "keyfile": TLS.key},
        "_member_host": member_host,
    }


def start_script() -> str:
    """Patroni's config with the passwords read from the Secret's files, written where only
    the postgres user reads it; then Patroni."""
    return f"""#!/bin/sh
set -eu
umask 077
python3 - <<'PY'
import json, os
with open("{CONFIG_DIR}/patroni.yaml") as f:
    cfg = json.load(f)
def secret(name):
    with open(os.path.join("{SECRETS_DIR}", name)) as f:
        return f.read()
host = cfg.pop("_member_host").replace("$POD_NAME", os.environ["POD_NAME"])
cfg["postgresql"]["connect_address"] = host + ":{t.TIMESCALE_PORT}"
cfg["restapi"]["connect_address"] = host + ":{t.PATRONI_API_PORT}"
auth = cfg["postgresql"]["authentication"]
auth["superuser"]["password"] = secret("superuser-password")
auth["replication"]["password"] = secret("replication-password")
cfg["restapi"]["authentication"]["password"] = secret("patroni-api-password")
with open("{RUNTIME_CONFIG}", "w") as f:
    json.dump(cfg, f)
PY
exec patroni {RUNTIME_CONFIG}
"""


# Runs once, on the member that initialises the cluster (Patroni passes the superuser's
# local connection string): the roles by duty and the database (infra/security.py).
POST_BOOTSTRAP = f"""#!/bin/sh
set -eu
exec psql -X -q "$1" -f {CONFIG_DIR}/roles.sql
"""


def patroni_env(spec: StackSpec) -> list[dict]:
    """No secret here: the passwords are files (start_script)."""
    values = {
        "PATRONI_SCOPE": service_settings.patroni(spec).scope,
        "PATRONI_NAME": "$(POD_NAME)",
        "PATRONI_KUBERNETES_NAMESPACE": spec.namespace,
        "PATRONI_KUBERNETES_LABELS": json.dumps(common.selector(COMPONENT)),
        "PATRONI_KUBERNETES_USE_ENDPOINTS": "true",
        "PATRONI_KUBERNETES_POD_IP": "$(POD_IP)",
        # Set explicitly: the Services select on these, whatever Patroni's defaults.
        "PATRONI_KUBERNETES_ROLE_LABEL": ROLE_LABEL,
        "PATRONI_KUBERNETES_LEADER_LABEL_VALUE": PRIMARY,
        "PATRONI_KUBERNETES_STANDBY_LEADER_LABEL_VALUE": PRIMARY,
        "PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE": REPLICA,
        "PATRONI_POSTGRESQL_LISTEN": f"0.0.0.0:{t.TIMESCALE_PORT}",
        "PATRONI_POSTGRESQL_DATA_DIR": DATA_DIR,
        "PATRONI_POSTGRESQL_PGPASS": "/tmp/pgpass",
        "PGDATA": DATA_DIR,
    }
    return (common.pod_env("POD_NAME", "POD_IP")
            + [{"name": name, "value": value} for name, value in values.items()])


class Timescale(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, spec: StackSpec, namespace: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:kubernetes:Timescale", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        members = 1 + spec.sizes.timescale_replicas
        passwords = {file: generated.secret(key) for file, key in CREDENTIAL_FILES.items()}
        self.password = passwords["password"]
        self.roles = {duty: (user, passwords[f"{duty}-password"]) for duty, (user, _) in security.TIMESCALE_ROLES.items()}

        credentials = k8s.core.v1.Secret(
            f"{name}-credentials", metadata=common.metadata("timescale-credentials", namespace, COMPONENT),
            type="Opaque", string_data=pulumi.Output.all(**passwords), opts=child)
        tls = common.tls_secret(f"{name}-tls", "timescale-tls", namespace, COMPONENT, "timescale", self)
        # JSON is YAML, so Patroni reads this file as it is.
        files = {"patroni.yaml": json.dumps(patroni_config(spec), indent=2, sort_keys=True),
                 "start-patroni.sh": start_script(), "post-bootstrap.sh": POST_BOOTSTRAP,
                 "roles.sql": security.roles_sql(f"{SECRETS_DIR}/")}
        config = k8s.core.v1.ConfigMap(f"{name}-patroni", metadata=common.metadata("timescale-patroni", namespace,
                                                                                 COMPONENT),
                                       data=files, opts=child)
        account = self._patroni_rbac(name, namespace)

        named_ports = {"postgresql": t.TIMESCALE_PORT, "patroni": t.PATRONI_API_PORT}
        headless = common.headless_service(t.headless(t.TIMESCALE), namespace, COMPONENT, named_ports, self)
        common.client_service(t.TIMESCALE, namespace, COMPONENT, {"postgresql": t.TIMESCALE_PORT}, self,
                              extra_selector={ROLE_LABEL: PRIMARY})
        if spec.sizes.timescale_replicas:
            common.client_service(t.TIMESCALE_REPLICAS_SERVICE, namespace, COMPONENT,
                                  {"postgresql": t.TIMESCALE_PORT}, self, extra_selector={ROLE_LABEL: REPLICA})

        container = {
            "name": "timescaledb", "image": spec.images.timescale_ha,
            "command": ["sh", f"{CONFIG_DIR}/start-patroni.sh"],
            "env": patroni_env(spec),
            "ports": [{"name": port_name, "container_port": port} for port_name, port in named_ports.items()],
            # Patroni's own health endpoints: /readiness is 200 on a running leader or a
            # streaming replica, /liveness while Patroni's loop is alive.
            "readiness_probe": common.http_probe("/readiness", t.PATRONI_API_PORT, period=5, https=True),
            "liveness_probe": common.http_probe("/liveness", t.PATRONI_API_PORT, period=10, failures=6, https=True),
            "resources": common.resources(spec.sizes.resources.timescale),
            "security_context": common.container_security(),
            "volume_mounts": [{"name": "data", "mount_path": PGROOT},
                              {"name": "patroni", "mount_path": CONFIG_DIR, "read_only": True},
                              {"name": "credentials", "mount_path": SECRETS_DIR, "read_only": True},
                              {"name": "tls", "mount_path": TLS_DIR, "read_only": True}],
        }
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=common.metadata(t.TIMESCALE, namespace, COMPONENT),
            spec={
                "service_name": headless.metadata.apply(lambda m: m.name),
                "replicas": members,
                # Members find the leader through the Kubernetes API, not through each other's
                # readiness; starting them together halves the time to a full cluster.
                "pod_management_policy": "Parallel",
                "selector": {"match_labels": common.selector(COMPONENT)},
                "template": {
                    "metadata": {"labels": common.labels(COMPONENT),
                                 "annotations": {"backbone/config-checksum": common.checksum(files),
                                                 "backbone/tls-checksum": common.certificate_checksum("timescale")}},
                    "spec": {
                        "service_account_name": account.metadata.apply(lambda m: m.name),
                        "enable_service_links": False,
                        "security_context": common.pod_security(POSTGRES_UID),
                        # Time for the final checkpoint, so the next start needs no recovery.
                        "termination_grace_period_seconds": 120,
                        "containers": [container],
                        "volumes": [{"name": "patroni", "config_map": {
                            "name": config.metadata.apply(lambda m: m.name), "default_mode": 0o555}},
                                    common.secret_volume("credentials", credentials),
                                    common.secret_volume("tls", tls)],
                        **common.member_placement(COMPONENT, members, spec.placement.quorum_anti_affinity),
                    },
                },
                "volume_claim_templates": [common.data_claim(spec.sizes.storage.timescale, spec.storage_class)],
            },
            opts=child)
        # Not voters: the leader lock lives in the Kubernetes API, so members need no majority
        # of their own (and a majority of two would be both).
        common.disruption_budget(t.TIMESCALE, namespace, COMPONENT, self)
        common.network_policy(t.TIMESCALE, namespace, COMPONENT, client_ports=[t.TIMESCALE_PORT],
                              peer_ports=[t.PATRONI_API_PORT], parent=self)
        self.register_outputs({"password": self.password, "members": members})

    def _patroni_rbac(self, name: str, namespace: pulumi.Input[str]) -> k8s.core.v1.ServiceAccount:
        child = pulumi.ResourceOptions(parent=self)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account", metadata=common.metadata("timescale-patroni", namespace, COMPONENT),
            opts=child)
        verbs = ["create", "get", "list", "patch", "update", "watch", "delete"]
        role = k8s.rbac.v1.Role(
            f"{name}-role", metadata=common.metadata("timescale-patroni", namespace, COMPONENT),
            rules=[
                # The leader lock and cluster config live in Endpoints (use_endpoints).
                {"api_groups": [""], "resources": ["endpoints", "configmaps"], "verbs": verbs},
                # Patroni labels pods with their role; the Services select on it.
                {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch", "update", "watch"]},
                # Patroni creates the `<scope>-config` Service that keeps its config Endpoints alive.
                {"api_groups": [""], "resources": ["services"], "verbs": ["create"]},
            ],
            opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-role-binding", metadata=common.metadata("timescale-patroni", namespace, COMPONENT),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role",
                      "name": role.metadata.apply(lambda m: m.name)},
            subjects=[{"kind": "ServiceAccount", "name": account.metadata.apply(lambda m: m.name),
                       "namespace": namespace}],
            opts=child)
        return account
