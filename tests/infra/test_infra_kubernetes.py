"""The staging stack on the kubernetes platform: HA topology, safety and generated config."""
from __future__ import annotations

import json

import pytest

from backbone.serviceconfig import sentinel_conf
from infra import service_settings
from infra.spec import build_spec
from stack_harness import StackRun, is_secret, mock_password, plain, run_stack, stack_file_config

pytestmark = pytest.mark.timeout(60)

NS = "backbone-staging"
STATEFULSETS = {"timescale": 2, "redis": 3, "redis-sentinel": 3, "kafka": 3}


def manifest(run, kind: str, name: str) -> dict:
    return plain(run.k8s(kind, name).inputs)


def pod_spec(run, name: str) -> dict:
    return manifest(run, "StatefulSet", name)["spec"]["template"]["spec"]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_components_have_typed_urns(staging_run):
    components = {d.type for d in staging_run.declared if d.type.startswith("backbone:")}
    assert components == {"backbone:kubernetes:Namespace", "backbone:kubernetes:Timescale",
                          "backbone:kubernetes:Redis", "backbone:kubernetes:Kafka"}


def test_everything_lives_in_the_restricted_namespace(staging_run):
    namespace = manifest(staging_run, "Namespace", NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [plain(d.inputs) for d in staging_run.declared
                  if d.type.startswith("kubernetes:") and d.inputs["kind"] != "Namespace"]
    assert namespaced and all(m["metadata"]["namespace"] == NS for m in namespaced)


@pytest.mark.parametrize("name, replicas", STATEFULSETS.items())
def test_ha_replica_counts(staging_run, name, replicas):
    assert manifest(staging_run, "StatefulSet", name)["spec"]["replicas"] == replicas


@pytest.mark.parametrize("name", STATEFULSETS)
def test_pods_run_non_root_without_capabilities(staging_run, name):
    spec = pod_spec(staging_run, name)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0 and pod["fsGroup"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["enableServiceLinks"] is False
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["runAsNonRoot"] is True


@pytest.mark.parametrize("name", STATEFULSETS)
def test_containers_have_probes_and_resources(staging_run, name):
    spec = build_spec(stack_file_config("staging"), "staging")
    sizes = {"timescale": spec.sizes.resources.timescale, "redis": spec.sizes.resources.redis,
             "redis-sentinel": spec.sizes.resources.sentinel, "kafka": spec.sizes.resources.kafka}[name]
    for container in pod_spec(staging_run, name)["containers"]:
        assert container["readinessProbe"] and container["livenessProbe"]
        assert container["resources"] == {"requests": sizes.requests.model_dump(), "limits": sizes.limits.model_dump()}


@pytest.mark.parametrize("name, size, mount", [("timescale", "50Gi", "/home/postgres/pgdata"),
                                               ("redis", "5Gi", "/data"), ("kafka", "50Gi", "/var/lib/kafka/data")])
def test_data_lives_on_persistent_volume_claims(staging_run, name, size, mount):
    statefulset = manifest(staging_run, "StatefulSet", name)
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["data"] == mount


@pytest.mark.parametrize("name", STATEFULSETS)
def test_every_statefulset_has_services_a_budget_and_a_network_policy(staging_run, name):
    statefulset = manifest(staging_run, "StatefulSet", name)
    pods = statefulset["spec"]["selector"]["matchLabels"]
    assert pods.items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    headless = manifest(staging_run, "Service", f"{name}-headless")
    assert statefulset["spec"]["serviceName"] == f"{name}-headless"
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"] == pods
    assert manifest(staging_run, "Service", name)["spec"]["selector"].items() >= pods.items()
    budget = manifest(staging_run, "PodDisruptionBudget", name)
    assert budget["spec"]["selector"] == {"matchLabels": pods}  # its values: test_infra_placement.py
    policy = manifest(staging_run, "NetworkPolicy", name)["spec"]
    assert policy["podSelector"] == {"matchLabels": pods} and policy["policyTypes"] == ["Ingress"]
    if name != "redis-sentinel":  # Sentinels: their clients only (test_infra_security.py)
        assert policy["ingress"][0]["from"] == [{"podSelector": {}}], "clients: pods of this namespace only"


def test_peer_ports_are_open_to_peers_only(staging_run):
    kafka = manifest(staging_run, "NetworkPolicy", "kafka")["spec"]["ingress"]
    assert [p["port"] for p in kafka[0]["ports"]] == [9092]
    assert kafka[1]["from"] == [{"podSelector": {"matchLabels": kafka_selector(staging_run)}}]
    assert [p["port"] for p in kafka[1]["ports"]] == [9093, 9094]
    timescale = manifest(staging_run, "NetworkPolicy", "timescale")["spec"]["ingress"]
    assert [p["port"] for p in timescale[1]["ports"]] == [8008]


def kafka_selector(run) -> dict:
    return manifest(run, "StatefulSet", "kafka")["spec"]["selector"]["matchLabels"]


def server_properties(run) -> dict[str, str]:
    text = manifest(run, "ConfigMap", "kafka-config")["data"]["server.properties"]
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_kafka_is_a_three_voter_kraft_quorum(staging_run):
    config = server_properties(staging_run)
    voters = config["controller.quorum.voters"].split(",")
    assert voters == [f"{i}@kafka-{i}.kafka-headless.{NS}.svc.cluster.local:9093" for i in range(3)]
    assert config["process.roles"] == "broker,controller"
    assert config["min.insync.replicas"] == "2"
    assert config["broker.session.timeout.ms"] == "3000"  # staging: tuned failure detection
    statefulset = manifest(staging_run, "StatefulSet", "kafka")
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    env = env_of(statefulset["spec"]["template"]["spec"]["containers"][0])
    assert env["POD_INDEX"] == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    # the two per-pod properties: written by the start script from the downward-API variables
    start = manifest(staging_run, "ConfigMap", "kafka-config")["data"]["start-kafka.sh"]
    assert 'echo "node.id=$POD_INDEX"' in start
    host = f"$POD_NAME.kafka-headless.{NS}.svc.cluster.local"
    assert f'echo "advertised.listeners=CLIENT://{host}:9092,INTERNAL://{host}:9094"' in start
    assert "node.id" not in config and "advertised.listeners" not in config


def test_redis_has_replicas_and_three_sentinels(staging_run):
    spec = build_spec(stack_file_config("staging"), "staging")
    files = manifest(staging_run, "ConfigMap", "redis-config")["data"]
    generated = sentinel_conf(service_settings.sentinel(spec), "/data")
    assert files["sentinel.conf"].endswith("\n".join(line for line in generated.splitlines()
                                                     if not line.startswith("port ")) + "\n")
    assert f"sentinel monitor backbone redis-0.redis-headless.{NS}.svc.cluster.local 6379 2" in files["sentinel.conf"]
    assert "sentinel down-after-milliseconds backbone 1000" in files["sentinel.conf"]
    assert "requirepass" not in json.dumps(files)
    redis = pod_spec(staging_run, "redis")["containers"][0]
    assert env_of(redis)["SENTINEL_HOST"] == f"redis-sentinel.{NS}.svc.cluster.local"
    sentinel = pod_spec(staging_run, "redis-sentinel")
    assert {v["name"]: v for v in sentinel["volumes"]}["data"] == {"name": "data", "emptyDir": {}}


def test_redis_credentials_are_a_secret(staging_run):
    secret = staging_run.k8s("Secret", "redis-auth")
    assert is_secret(secret.inputs["stringData"])
    data = plain(secret.inputs)["stringData"]
    replication, sentinel = mock_password("redis-replication-password"), mock_password("sentinel-password")
    assert data["auth.conf"] == (f"aclfile /etc/redis-auth/users.acl\nmasteruser replication\n"
                                 f'masterauth "{replication}"\n')
    assert f'sentinel auth-pass backbone "{mock_password("redis-sentinel-password")}"' in data["sentinel-auth.conf"]
    assert f'requirepass "{sentinel}"' in data["sentinel-auth.conf"]
    assert mock_password("redis-password") not in data["users.acl"], "the ACL file holds hashes only"
    for container in pod_spec(staging_run, "redis")["containers"]:
        assert not [e for e in container["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]


def test_timescale_is_a_two_member_patroni_cluster(staging_run):
    patroni = json.loads(manifest(staging_run, "ConfigMap", "timescale-patroni")["data"]["patroni.yaml"])
    dcs = patroni["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["synchronous_mode"]) == (20, 2, 4, True)
    assert dcs["postgresql"]["parameters"]["shared_preload_libraries"] == "timescaledb,pg_stat_statements"
    container = pod_spec(staging_run, "timescale")["containers"][0]
    assert container["image"].startswith("timescale/timescaledb-ha:")
    env = env_of(container)
    assert env["PATRONI_KUBERNETES_USE_ENDPOINTS"] == "true"
    assert env["PATRONI_KUBERNETES_NAMESPACE"] == NS
    assert "PATRONI_SUPERUSER_PASSWORD" not in env  # a mounted file (test_infra_security.py)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": 8008, "scheme": "HTTPS"}
    primary = manifest(staging_run, "Service", "timescale")["spec"]["selector"]
    replicas = manifest(staging_run, "Service", "timescale-replica")["spec"]["selector"]
    assert (primary["role"], replicas["role"]) == ("primary", "replica")
    assert env["PATRONI_KUBERNETES_LEADER_LABEL_VALUE"] == "primary"
    assert env["PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE"] == "replica"


def test_patroni_may_use_the_kubernetes_api_as_its_dcs(staging_run):
    rules = manifest(staging_run, "Role", "timescale-patroni")["rules"]
    granted = {resource: set(rule["verbs"]) for rule in rules for resource in rule["resources"]}
    for resource in ("endpoints", "configmaps", "pods"):
        assert {"get", "list", "watch", "patch", "update"} <= granted[resource], resource
    binding = manifest(staging_run, "RoleBinding", "timescale-patroni")
    assert binding["roleRef"]["name"] == "timescale-patroni"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "timescale-patroni", "namespace": NS}]
    assert pod_spec(staging_run, "timescale")["serviceAccountName"] == "timescale-patroni"


def test_config_changes_roll_the_pods():
    from stack_harness import run_stack
    config = stack_file_config("staging")
    detection = config.get("failure_detection", {})
    changed = {**config, "failure_detection": {**detection, "sentinel": {**detection.get("sentinel", {}),
                                                                          "down_after_ms": 2000}}}
    before, after = run_stack("staging", config), run_stack("staging", changed)

    def checksum(run, name):
        return manifest(run, "StatefulSet", name)["spec"]["template"]["metadata"]["annotations"]
    assert checksum(before, "redis-sentinel") != checksum(after, "redis-sentinel")
    for untouched in ("redis", "kafka", "timescale"):
        assert checksum(before, untouched) == checksum(after, untouched), untouched


# --- backbone:await_readiness ------------------------------------------------------------------

def _kubernetes_objects(run: StackRun) -> list:
    return [d for d in run.declared if d.type.startswith("kubernetes:")]


def test_objects_wait_for_their_rollout_by_default(staging_run):
    objects = _kubernetes_objects(staging_run)
    assert len(objects) > 20
    for declared in objects:
        annotations = plain(declared.inputs).get("metadata", {}).get("annotations", {})
        assert not {"pulumi.com/waitFor", "pulumi.com/skipAwait"} & set(annotations), declared.name


def test_await_readiness_false_changes_only_the_waits_of_statefulsets_and_services(staging_run):
    run = run_stack("staging", {**stack_file_config("staging"), "await_readiness": "false"})
    assert run.error is None, run.error
    assert [d.name for d in run.declared] == [d.name for d in staging_run.declared]
    waiting = {d.name: plain(d.inputs) for d in _kubernetes_objects(staging_run)}
    expected = {"kubernetes:apps/v1:StatefulSet": "jsonpath={.status.observedGeneration}",
                "kubernetes:core/v1:Service": "jsonpath={.spec.clusterIP}"}
    changed = 0
    for declared in _kubernetes_objects(run):
        inputs, before = plain(declared.inputs), waiting[declared.name]
        if declared.type in expected:
            assert inputs["metadata"].pop("annotations") == {
                **before["metadata"].pop("annotations", {}), "pulumi.com/waitFor": expected[declared.type]}
            changed += 1
        assert inputs == before, declared.name
    assert changed == 4 + 9  # the StatefulSets and the Services of staging


def test_an_unparsable_await_readiness_is_a_spec_error():
    run = run_stack("staging", {**stack_file_config("staging"), "await_readiness": "sometimes"})
    assert "backbone:await_readiness" in str(run.error)
