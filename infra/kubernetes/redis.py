"""Redis on Kubernetes: a primary + replicas StatefulSet, watched by Sentinels when sized so.

redis.conf and sentinel.conf come from the generators with TLS only (ConfigMap); the ACL
file, the replicas' and the Sentinels' credentials live in the Secret `redis-auth`, the
certificate in `redis-tls`, both mounted read-only (infra/security.py). A pod decides its role at
every start: it asks the Sentinels who the master is, so a restarted old primary rejoins as
a replica of whoever was promoted meanwhile; pod 0 is the primary only when no Sentinel
answers (the first start).
"""
from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from backbone.serviceconfig import redis_conf, sentinel_conf

from infra import generated, security, service_settings
from infra import topology as t
from infra.kubernetes import common
from infra.spec import AntiAffinity, StackSpec

COMPONENT = "redis"
SENTINEL_COMPONENT = "redis-sentinel"
REDIS_UID = 999  # `redis` user of the official image
DATA_DIR = "/data"
CONFIG_DIR = "/etc/redis"
AUTH_DIR = "/etc/redis-auth"
TLS_DIR = "/etc/redis-tls"
TLS = security.tls_files(f"{TLS_DIR}/")
# Pods that may ask the Sentinels (26379) besides the Redis and Sentinel pods themselves:
# the application's pods carry this label (docs/security.md).
SENTINEL_CLIENT_LABEL = {"backbone.io/redis-sentinel-client": "true"}
CLI = f"redis-cli --no-auth-warning --tls --cacert {TLS.ca}"
# the admin user's password from the Secret, in the probe's own environment only
PING = (f'REDISCLI_AUTH="$(cat {AUTH_DIR}/admin-password)" {CLI} --user {security.REDIS_ADMIN} '
        "-p {port} ping | grep -q PONG")
SENTINEL_PING = f'REDISCLI_AUTH="$(cat {AUTH_DIR}/sentinel-password)" {CLI} -p {t.SENTINEL_PORT} ping | grep -q PONG'


def start_redis_script(spec: StackSpec) -> str:
    ns = spec.namespace
    return f"""#!/bin/sh
set -eu
umask 077
SELF="$POD_NAME.{t.headless(t.REDIS)}.{ns}.svc.cluster.local"
MASTER=""
if [ -n "${{SENTINEL_HOST:-}}" ]; then
  MASTER=$(REDISCLI_AUTH="$(cat {AUTH_DIR}/sentinel-password)" timeout 5 {CLI} -h "$SENTINEL_HOST" \
    -p {t.SENTINEL_PORT} --raw SENTINEL get-master-addr-by-name {t.REDIS_MASTER_NAME} 2>/dev/null | head -n 1 || true)
fi
[ -n "$MASTER" ] || MASTER="{t.pod_host(t.REDIS, 0, ns)}"
{{
  echo "include {CONFIG_DIR}/redis.conf"
  echo "include {AUTH_DIR}/auth.conf"
  echo "replica-announce-ip $SELF"
  if [ "$MASTER" != "$SELF" ]; then echo "replicaof $MASTER {t.REDIS_PORT}"; fi
}} > {DATA_DIR}/redis-runtime.conf
exec redis-server {DATA_DIR}/redis-runtime.conf
"""


def start_sentinel_script(spec: StackSpec) -> str:
    # Sentinel rewrites its file with what it learns (current master, peers), so the file is
    # written only when the pod's volume is new; a restarted container keeps what it learnt.
    return f"""#!/bin/sh
set -eu
umask 077
CONF={DATA_DIR}/sentinel.conf
if [ ! -f "$CONF" ]; then
  cat {CONFIG_DIR}/sentinel.conf {AUTH_DIR}/sentinel-auth.conf > "$CONF"
  echo "sentinel announce-ip $POD_NAME.{t.headless(t.SENTINEL)}.{spec.namespace}.svc.cluster.local" >> "$CONF"
fi
exec redis-sentinel "$CONF"
"""


def auth_files(spec: StackSpec, passwords: dict[str, str]) -> dict[str, str]:
    """The Secret `redis-auth`: ACL file (hashes), replicas' and Sentinels' credentials, and
    the two passwords the probes and the start script read."""
    return {
        "users.acl": security.redis_acl(passwords, spec.cache_policy.namespace),
        "auth.conf": security.redis_secret_conf(f"{AUTH_DIR}/users.acl", passwords[security.REDIS_REPLICATION]),
        "sentinel-auth.conf": security.sentinel_secret_conf(t.REDIS_MASTER_NAME, passwords[security.REDIS_SENTINEL],
                                                            passwords[security.SENTINELS]),
        "admin-password": passwords[security.REDIS_ADMIN],
        "sentinel-password": passwords[security.SENTINELS],
    }


class Redis(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, spec: StackSpec, namespace: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:kubernetes:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        sentinels = spec.sizes.redis_sentinels
        passwords = {user: generated.secret(key) for user, key in security.REDIS_USERS.items()}
        passwords[security.SENTINELS] = generated.secret("sentinel_password")
        self.password = passwords[security.REDIS_APP]

        files = {"redis.conf": security.tls_only(redis_conf(service_settings.redis(spec, DATA_DIR)), t.REDIS_PORT, TLS),
                 "start-redis.sh": start_redis_script(spec)}
        if sentinels:
            files["sentinel.conf"] = security.tls_only(sentinel_conf(service_settings.sentinel(spec), DATA_DIR),
                                                       t.SENTINEL_PORT, TLS)
            files["start-sentinel.sh"] = start_sentinel_script(spec)
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=common.metadata("redis-config", namespace, COMPONENT),
                                       data=files, opts=child)
        auth = k8s.core.v1.Secret(
            f"{name}-auth", metadata=common.metadata("redis-auth", namespace, COMPONENT), type="Opaque",
            string_data=pulumi.Output.all(**passwords).apply(lambda pw: auth_files(spec, pw)), opts=child)
        tls = common.tls_secret(f"{name}-tls", "redis-tls", namespace, COMPONENT, "redis", self)
        volumes = [{"name": "config", "config_map": {"name": config.metadata.apply(lambda m: m.name),
                                                      "default_mode": 0o555}},
                   common.secret_volume("auth", auth), common.secret_volume("tls", tls)]
        mounts = [{"name": "config", "mount_path": CONFIG_DIR, "read_only": True},
                  {"name": "auth", "mount_path": AUTH_DIR, "read_only": True},
                  {"name": "tls", "mount_path": TLS_DIR, "read_only": True},
                  {"name": "data", "mount_path": DATA_DIR}]

        headless = common.headless_service(t.headless(t.REDIS), namespace, COMPONENT, {"redis": t.REDIS_PORT}, self)
        # With Sentinels, clients ask them for the master (contract mode `sentinel`); this
        # Service then reaches any member and suits only reads and health checks.
        common.client_service(t.REDIS, namespace, COMPONENT, {"redis": t.REDIS_PORT}, self)
        env = common.pod_env("POD_NAME")
        if sentinels:
            env.append({"name": "SENTINEL_HOST", "value": t.service_host(t.SENTINEL, spec.namespace)})
        ping = PING.format(port=t.REDIS_PORT)
        container = {
            "name": "redis", "image": spec.images.redis,
            "command": ["sh", f"{CONFIG_DIR}/start-redis.sh"],
            "env": env,
            "ports": [{"name": "redis", "container_port": t.REDIS_PORT}],
            "readiness_probe": common.exec_probe(ping, period=5),
            "liveness_probe": common.exec_probe(ping, period=10, failures=6, initial_delay=10),
            "resources": common.resources(spec.sizes.resources.redis),
            "security_context": common.container_security(),
            "volume_mounts": mounts,
        }
        tls_sum = common.certificate_checksum("redis")
        # Preferred, whatever placement.quorum_anti_affinity says: data pods do not vote (the
        # Sentinels do), and a replica sharing a node still holds a copy and can be promoted,
        # where a Pending one holds nothing.
        self.statefulset = self._statefulset(
            f"{name}-statefulset", t.REDIS, COMPONENT, namespace, headless, 1 + spec.sizes.redis_replicas,
            "preferred", container, volumes,
            common.checksum({k: files[k] for k in ("redis.conf", "start-redis.sh")}), tls_sum,
            [common.data_claim(spec.sizes.storage.redis, spec.storage_class)])
        common.disruption_budget(t.REDIS, namespace, COMPONENT, self)
        common.network_policy(t.REDIS, namespace, COMPONENT, client_ports=[t.REDIS_PORT], peer_ports=[], parent=self)
        if sentinels:
            self._sentinels(name, spec, namespace, volumes + [{"name": "data", "empty_dir": {}}], mounts, files,
                            tls_sum)
        self.register_outputs({"password": self.password, "replicas": spec.sizes.redis_replicas,
                               "sentinels": sentinels})

    def _sentinels(self, name: str, spec: StackSpec, namespace: pulumi.Input[str], volumes: list,
                   mounts: list, files: dict[str, str], tls_sum: str) -> None:
        headless = common.headless_service(t.headless(t.SENTINEL), namespace, SENTINEL_COMPONENT,
                                           {"sentinel": t.SENTINEL_PORT}, self)
        common.client_service(t.SENTINEL, namespace, SENTINEL_COMPONENT, {"sentinel": t.SENTINEL_PORT}, self)
        container = {
            "name": "sentinel", "image": spec.images.redis,
            "command": ["sh", f"{CONFIG_DIR}/start-sentinel.sh"],
            "env": common.pod_env("POD_NAME"),
            "ports": [{"name": "sentinel", "container_port": t.SENTINEL_PORT}],
            "readiness_probe": common.exec_probe(SENTINEL_PING, period=5),
            "liveness_probe": common.exec_probe(SENTINEL_PING, period=10, failures=6, initial_delay=10),
            "resources": common.resources(spec.sizes.resources.sentinel),
            "security_context": common.container_security(),
            "volume_mounts": mounts,
        }
        self.sentinel_statefulset = self._statefulset(
            f"{name}-sentinel-statefulset", t.SENTINEL, SENTINEL_COMPONENT, namespace, headless,
            spec.sizes.redis_sentinels, spec.placement.quorum_anti_affinity, container, volumes,
            common.checksum({k: files[k] for k in ("sentinel.conf", "start-sentinel.sh")}), tls_sum, [])
        common.disruption_budget(t.SENTINEL, namespace, SENTINEL_COMPONENT, self, voters=spec.sizes.redis_sentinels)
        # 26379 only from what needs a Sentinel: the Sentinels (each other), the Redis pods (a
        # starting pod asks who the master is) and pods labelled as Sentinel clients; not
        # from every pod of the namespace (SENTINEL FAILOVER / RESET).
        clients = [{"pod_selector": {"match_labels": common.selector(c)}} for c in (SENTINEL_COMPONENT, COMPONENT)]
        clients.append({"pod_selector": {"match_labels": SENTINEL_CLIENT_LABEL}})
        common.network_policy(t.SENTINEL, namespace, SENTINEL_COMPONENT, client_ports=[t.SENTINEL_PORT],
                              peer_ports=[], parent=self, clients=clients)

    def _statefulset(self, resource_name: str, name: str, component: str, namespace: pulumi.Input[str],
                     headless: k8s.core.v1.Service, replicas: int, anti_affinity: AntiAffinity, container: dict,
                     volumes: list, config_checksum: str, tls_checksum: str, claims: list) -> k8s.apps.v1.StatefulSet:
        return k8s.apps.v1.StatefulSet(
            resource_name,
            metadata=common.metadata(name, namespace, component),
            spec={
                "service_name": headless.metadata.apply(lambda m: m.name),
                "replicas": replicas,
                "selector": {"match_labels": common.selector(component)},
                "template": {
                    "metadata": {"labels": common.labels(component),
                                 "annotations": {"backbone/config-checksum": config_checksum,
                                                 "backbone/tls-checksum": tls_checksum}},
                    "spec": {
                        "enable_service_links": False,
                        "security_context": common.pod_security(REDIS_UID),
                        "containers": [container],
                        "volumes": volumes,
                        **common.member_placement(component, replicas, anti_affinity),
                    },
                },
                **({"volume_claim_templates": claims} if claims else {}),
            },
            opts=pulumi.ResourceOptions(parent=self))
