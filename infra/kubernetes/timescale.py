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

from infra import generated, service_settings
from infra import topology as t
from infra.kubernetes import common
from infra.spec import StackSpec

COMPONENT = "timescale"
POSTGRES_UID = 1000  # `postgres` user of the timescaledb-ha image
PGROOT = "/home/postgres/pgdata"
# A subdirectory: PostgreSQL refuses a data directory that holds a volume's lost+found.
DATA_DIR = f"{PGROOT}/data"
CONFIG_DIR = "/etc/patroni"
SUPERUSER, REPLICATION_USER = "postgres", "standby"
ROLE_LABEL, PRIMARY, REPLICA = "role", "primary", "replica"


def patroni_config(spec: StackSpec) -> dict:
    return {
        "bootstrap": {
            "dcs": patroni_dynamic_config(service_settings.patroni(spec), service_settings.postgres(spec)),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            "post_bootstrap": f"{CONFIG_DIR}/post-bootstrap.sh",
        },
        "postgresql": {
            "pg_hba": [
                "local all all peer",
                f"host replication {REPLICATION_USER} all scram-sha-256",
                "host all all all scram-sha-256",
            ],
        },
        "restapi": {"listen": f"0.0.0.0:{t.PATRONI_API_PORT}"},
    }


# Runs once, on the member that initialises the cluster: the application role and database,
# owned by a non-superuser, with the extension the contract requires.
POST_BOOTSTRAP = f"""#!/bin/sh
set -eu
psql -v ON_ERROR_STOP=1 -v app_password="$APP_PASSWORD" "$1" <<'SQL'
CREATE ROLE {t.DATABASE_USER} LOGIN PASSWORD :'app_password';
CREATE DATABASE {t.DATABASE} OWNER {t.DATABASE_USER};
\\connect {t.DATABASE}
CREATE EXTENSION IF NOT EXISTS timescaledb;
SQL
"""


def patroni_env(spec: StackSpec, credentials: pulumi.Input[str]) -> list[dict]:
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
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"$(POD_IP):{t.TIMESCALE_PORT}",
        "PATRONI_RESTAPI_CONNECT_ADDRESS": f"$(POD_IP):{t.PATRONI_API_PORT}",
        "PATRONI_POSTGRESQL_DATA_DIR": DATA_DIR,
        "PATRONI_POSTGRESQL_PGPASS": "/tmp/pgpass",
        "PATRONI_SUPERUSER_USERNAME": SUPERUSER,
        "PATRONI_REPLICATION_USERNAME": REPLICATION_USER,
        "PGDATA": DATA_DIR,
    }
    return (common.pod_env("POD_NAME", "POD_IP")
            + [{"name": name, "value": value} for name, value in values.items()]
            + [common.secret_env("PATRONI_SUPERUSER_PASSWORD", credentials, "superuser-password"),
               common.secret_env("PATRONI_REPLICATION_PASSWORD", credentials, "replication-password"),
               common.secret_env("APP_PASSWORD", credentials, "password")])


class Timescale(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, spec: StackSpec, namespace: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:kubernetes:Timescale", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        members = 1 + spec.sizes.timescale_replicas
        self.password = generated.secret("timescale_password")
        superuser = generated.secret("timescale_superuser_password")
        replication = generated.secret("timescale_replication_password")

        credentials = k8s.core.v1.Secret(
            f"{name}-credentials", metadata=common.metadata("timescale-credentials", namespace, COMPONENT),
            type="Opaque",
            string_data=pulumi.Output.all(self.password, superuser, replication).apply(lambda pw: {
                "password": pw[0], "superuser-password": pw[1], "replication-password": pw[2]}),
            opts=child)
        # JSON is YAML, so Patroni reads this file as it is.
        files = {"patroni.yaml": json.dumps(patroni_config(spec), indent=2, sort_keys=True),
                 "post-bootstrap.sh": POST_BOOTSTRAP}
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

        credentials_name = credentials.metadata.apply(lambda m: m.name)
        container = {
            "name": "timescaledb", "image": spec.images.timescale_ha,
            "command": ["patroni", f"{CONFIG_DIR}/patroni.yaml"],
            "env": patroni_env(spec, credentials_name),
            "ports": [{"name": port_name, "container_port": port} for port_name, port in named_ports.items()],
            # Patroni's own health endpoints: /readiness is 200 on a running leader or a
            # streaming replica, /liveness while Patroni's loop is alive.
            "readiness_probe": common.http_probe("/readiness", t.PATRONI_API_PORT, period=5),
            "liveness_probe": common.http_probe("/liveness", t.PATRONI_API_PORT, period=10, failures=6),
            "resources": common.resources(spec.sizes.resources.timescale),
            "security_context": common.container_security(),
            "volume_mounts": [{"name": "data", "mount_path": PGROOT},
                              {"name": "patroni", "mount_path": CONFIG_DIR, "read_only": True}],
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
                                 "annotations": {"backbone/config-checksum": common.checksum(files)}},
                    "spec": {
                        "service_account_name": account.metadata.apply(lambda m: m.name),
                        "enable_service_links": False,
                        "security_context": common.pod_security(POSTGRES_UID),
                        # Time for the final checkpoint, so the next start needs no recovery.
                        "termination_grace_period_seconds": 120,
                        "containers": [container],
                        "volumes": [{"name": "patroni", "config_map": {
                            "name": config.metadata.apply(lambda m: m.name), "default_mode": 0o555}}],
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
