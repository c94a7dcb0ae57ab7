"""The staging stack (kubernetes platform, HA sizes) deployed by the real Pulumi engine to a real
kube-apiserver, through `python -m infra.deploy`: one stack's life, in order.

bootstrap -> institutional (every object admitted) -> no-change preview -> an in-place update
-> a replacement Kubernetes forces -> `backbone manifest/validate --stack` on the real
outputs -> the CLI's schema check and the program's spec check refuse bad config ->
bootstrap (objects gone, store kept) -> institutional -> destroy (nothing left).
The tests depend on their order: each starts from the state the previous one left.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest

from infra import certificates
from infra.generated import CERTIFICATE_KEYS, ENCRYPTED_KEYS

NAMESPACE = "backbone-staging"  # Pulumi.staging.yaml's backbone:namespace
pytestmark = pytest.mark.timeout(900)

PLANTED = "plantedRedisPassword0123456789ab"  # set as the stack's redis_password: never printed
STORE = "/var/lib/backbone/staging-bootstrap.db"
STATEFULSETS = {"timescale": 2, "redis": 3, "redis-sentinel": 3, "kafka": 3}
# (API path plural, API group) -> the names the stack declares in its namespace
EXPECTED = {
    ("statefulsets", "apps/v1"): set(STATEFULSETS),
    ("services", ""): {"timescale", "timescale-headless", "timescale-replica", "redis", "redis-headless",
                       "redis-sentinel", "redis-sentinel-headless", "kafka", "kafka-headless"},
    ("configmaps", ""): {"timescale-patroni", "redis-config", "kafka-config"},
    ("secrets", ""): {"timescale-credentials", "timescale-tls", "redis-auth", "redis-tls", "kafka-credentials"},
    ("poddisruptionbudgets", "policy/v1"): set(STATEFULSETS),
    ("networkpolicies", "networking.k8s.io/v1"): set(STATEFULSETS),
    ("serviceaccounts", ""): {"timescale-patroni"},
    ("roles", "rbac.authorization.k8s.io/v1"): {"timescale-patroni"},
    ("rolebindings", "rbac.authorization.k8s.io/v1"): {"timescale-patroni"},
}


def ours(objects: dict[str, dict]) -> set[str]:
    return {name for name, item in objects.items()
            if item["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "backbone"}


def up(deployment) -> dict:
    code, summary, stderr = deployment.deploy("up")
    assert code == 0, stderr[-3000:]
    assert PLANTED not in stderr
    return summary


def test_the_secrets_helper_generated_each_secret_once_and_keeps_them(deployment):
    listed = json.loads(deployment.pulumi("config", "--json", "--show-secrets").stdout)
    generated = {key: entry for key, entry in listed.items() if entry.get("secret")}
    assert set(generated) == {f"backbone:{key}" for key in ENCRYPTED_KEYS}
    assert len(generated["backbone:kafka_cluster_id"]["value"]) == 22
    assert len({entry["value"] for entry in generated.values()}) == len(ENCRYPTED_KEYS)
    # the certificates: public config values, issued for the stack's namespace by its CA, and
    # the PEM survived `pulumi config set` from standard input intact
    certs = {key: listed[f"backbone:{key}"] for key in CERTIFICATE_KEYS}
    assert not any(entry.get("secret") for entry in certs.values())
    ca = certs["tls_ca_pem"]["value"]
    for service in certificates.SERVICES:
        cert = certs[f"tls_{service}_cert"]["value"]
        assert certificates.problem(cert, ca, certificates.service_names(service, "kubernetes", NAMESPACE)) is None
        assert certificates.key_matches(cert, generated[f"backbone:tls_{service}_key"]["value"])
    code, _, stderr = deployment.deploy("secrets")
    assert code == 0 and "generated" not in stderr, stderr
    assert json.loads(deployment.pulumi("config", "--json", "--show-secrets").stdout) == listed


def test_a_bootstrap_stack_deploys_nothing_and_exports_the_bootstrap_contract(deployment):
    deployment.config_set("tier", "bootstrap")
    deployment.config_set("bootstrap_store", STORE)
    # API-only cluster: no pod ever runs, so waiting for rollouts could only time out
    deployment.config_set("await_readiness", "false")
    deployment.config_set("redis_password", PLANTED, secret=True)
    summary = up(deployment)
    assert summary["changes"] == {"create": 1}  # the stack itself
    outputs = deployment.outputs()
    assert outputs["backbone"]["tier"] == "bootstrap" and outputs["backbone"]["bootstrap"] == {"store": STORE}
    assert outputs["backbone_secrets"] == {}


def test_institutional_up_has_the_api_server_admit_every_object(deployment):
    deployment.config_set("tier", "institutional")
    summary = up(deployment)
    created = [step for step in summary["steps"] if step["op"] == "create"]
    assert set(summary["changes"]) == {"create", "same"}
    for (plural, group), names in EXPECTED.items():
        assert ours(deployment.objects(plural, group)) == names, plural
    k8s_created = [s for s in created if s["type"].startswith("kubernetes:")]
    assert len(k8s_created) == 1 + sum(len(names) for names in EXPECTED.values())  # + the namespace
    namespace = deployment.cluster.get(f"/api/v1/namespaces/{NAMESPACE}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # the engine decrypted the config secret and the API server holds it, in the Secret only
    # (as the ACL file's hash of it: the servers never hold the application's password)
    auth = deployment.objects("secrets")["redis-auth"]
    acl = base64.b64decode(auth["data"]["users.acl"]).decode()
    assert f"user backbone reset on #{hashlib.sha256(PLANTED.encode()).hexdigest()} " in acl
    assert PLANTED not in json.dumps(deployment.objects("configmaps"))
    assert PLANTED not in json.dumps(deployment.objects("statefulsets", "apps/v1"))


def _decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_the_api_server_holds_tls_only_authenticated_services_with_secrets_as_files(deployment):
    secrets, config_maps = deployment.objects("secrets"), deployment.objects("configmaps")
    # certificates: kubernetes.io/tls Secrets the CA signed, naming the Services and pods
    listed = json.loads(deployment.pulumi("config", "--json").stdout)
    ca = listed["backbone:tls_ca_pem"]["value"]
    for service in ("timescale", "redis"):
        tls = secrets[f"{service}-tls"]
        assert tls["type"] == "kubernetes.io/tls"
        files = _decoded(tls)
        assert files["ca.crt"] == ca and "PRIVATE KEY" in files["tls.key"]
        assert certificates.problem(files["tls.crt"], ca,
                                    certificates.service_names(service, "kubernetes", NAMESPACE)) is None
    assert "PRIVATE KEY" not in json.dumps(config_maps)
    # config text: no plaintext listener anywhere
    redis_files = config_maps["redis-config"]["data"]
    for name, port in (("redis.conf", 6379), ("sentinel.conf", 26379)):
        assert "port 0" in redis_files[name].splitlines() and f"tls-port {port}" in redis_files[name].splitlines()
    acl = _decoded(secrets["redis-auth"])["users.acl"]
    assert acl.startswith("user default reset off")
    kafka = config_maps["kafka-config"]["data"]["server.properties"]
    assert "listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL" in kafka.splitlines()
    assert "allow.everyone.if.no.acl.found=false" in kafka.splitlines() and "PLAINTEXT" not in kafka
    patroni = json.loads(config_maps["timescale-patroni"]["data"]["patroni.yaml"])
    assert patroni["restapi"]["authentication"] == {"username": "patroni"}
    assert all(line.startswith(("local ", "hostssl ")) for line in patroni["postgresql"]["pg_hba"])
    # Secrets mounted read-only into the pod templates; no secret in any environment
    for name, statefulset in deployment.objects("statefulsets", "apps/v1").items():
        pod = statefulset["spec"]["template"]["spec"]
        mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert mounted and mounted <= set(secrets), name
        for container in pod["containers"]:
            assert "envFrom" not in container
            assert not [e for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})], name
    # 26379 only from the Sentinels' clients
    policy = deployment.objects("networkpolicies", "networking.k8s.io/v1")["redis-sentinel"]["spec"]
    assert {} not in [source.get("podSelector") for source in policy["ingress"][0]["from"]]


def test_the_statefulset_controller_creates_pods_that_pod_security_restricted_admits(deployment):
    # no scheduler and no kubelet: the pods stay Pending, but only after admission let them in
    deadline, pods = time.monotonic() + 120, {}
    while time.monotonic() < deadline:
        pods = deployment.objects("pods")
        if all(f"{name}-0" in pods for name in STATEFULSETS):
            break
        time.sleep(1)
    assert {f"{name}-0" for name in STATEFULSETS} <= set(pods)
    for pod in pods.values():
        assert pod["status"].get("phase") == "Pending" and not pod["spec"].get("nodeName")


def test_a_preview_right_after_up_plans_no_change(deployment):
    code, summary, stderr = deployment.deploy("preview")
    assert code == 0, stderr[-3000:]
    assert summary["steps"] == [] and set(summary["changes"]) == {"same"}


def _kafka_statefulset_steps(summary: dict) -> list[dict]:
    return [s for s in summary["steps"] if s["type"] == "kubernetes:apps/v1:StatefulSet"]


def test_a_cpu_limit_change_is_exactly_one_in_place_update(deployment):
    before = deployment.objects("statefulsets", "apps/v1")["kafka"]["metadata"]["uid"]
    deployment.config_set("sizes.resources.kafka.limits.cpu", "2500m", path=True)
    code, preview, stderr = deployment.deploy("preview")
    assert code == 0, stderr[-3000:]
    [step] = preview["steps"]
    assert (step["op"], step["type"], step["name"]) == ("update", "kubernetes:apps/v1:StatefulSet", "kafka-statefulset")
    assert step["replace_keys"] == []
    assert step["detailed_diff"] and not any(k.endswith("-replace") for k in step["detailed_diff"].values()), step
    assert any("resources" in path and "cpu" in path for path in step["detailed_diff"]), step
    summary = up(deployment)
    assert [(s["op"], s["name"]) for s in summary["steps"]] == [("update", "kafka-statefulset")]
    after = deployment.objects("statefulsets", "apps/v1")["kafka"]
    assert after["metadata"]["uid"] == before  # the same object, updated
    [container] = after["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["cpu"] == "2500m"


def test_a_volume_size_change_replaces_the_statefulset_as_kubernetes_requires(deployment):
    before = deployment.objects("statefulsets", "apps/v1")["kafka"]["metadata"]["uid"]
    deployment.config_set("sizes.storage.kafka", "60Gi", path=True)
    code, preview, stderr = deployment.deploy("preview")
    assert code == 0, stderr[-3000:]
    ops = {(s["op"], s["name"]) for s in preview["steps"]}
    assert {name for _, name in ops} == {"kafka-statefulset"}
    assert ("replace", "kafka-statefulset") in ops or ("delete-replaced", "kafka-statefulset") in ops, ops
    [replace] = [s for s in preview["steps"] if s["op"] == "replace"]
    forcing = [path for path, kind in replace["detailed_diff"].items() if kind.endswith("-replace")]
    assert forcing and all("volumeClaimTemplates" in path for path in forcing), replace
    up(deployment)
    after = deployment.objects("statefulsets", "apps/v1")["kafka"]
    assert after["metadata"]["uid"] != before  # volumeClaimTemplates are immutable: a new object
    assert after["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "60Gi"


def test_backbone_reads_the_real_outputs_and_never_prints_the_secrets(deployment):
    outputs = deployment.outputs()
    assert outputs["backbone_secrets"]["redis"]["password"] == PLANTED  # decrypted by the CLI
    manifest = deployment.backbone("manifest", "--stack", "staging", "--format", "json")
    assert manifest.returncode == 0, manifest.stderr
    shown = json.loads(manifest.stdout)
    assert shown["tier"] == "institutional" and shown["environment"] == "staging"
    assert shown["redis"]["host"] == f"redis.{NAMESPACE}.svc.cluster.local"
    assert shown["kafka"]["expected_brokers"] == 3
    validate = deployment.backbone("validate", "--stack", "staging", "--format", "json", "--timeout", "2")
    # the cluster's DNS names do not resolve here and no pod runs: the checks fail, readably
    assert validate.returncode == 1, validate.stderr
    report = json.loads(validate.stdout)
    assert report and "Traceback" not in validate.stderr
    secrets = [PLANTED, outputs["backbone_secrets"]["timescale"]["password"]]
    listed = json.loads(deployment.pulumi("config", "--json", "--show-secrets").stdout)
    secrets += [listed[f"backbone:{key}"]["value"] for key in ENCRYPTED_KEYS]
    assert outputs["backbone"]["kafka"]["ca_pem"] == listed["backbone:tls_ca_pem"]["value"]
    for proc in (manifest, validate):
        for secret in secrets:
            assert secret not in proc.stdout and secret not in proc.stderr
    # at rest: the state and the stack file hold them encrypted only
    state = Path(deployment.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    files = [p for p in state.rglob("*") if p.is_file()] + [deployment.project / "Pulumi.staging.yaml"]
    assert len(files) > 1
    for path in files:
        text = path.read_bytes()
        assert all(secret.encode() not in text for secret in secrets), path


def test_the_real_cli_refuses_a_value_of_the_wrong_type_by_the_project_schema(deployment):
    deployment.config_set("await_readiness", "sometimes")
    code, _, stderr = deployment.deploy("preview")
    assert code == 2
    assert "'await_readiness' must be of type 'boolean'" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr
    deployment.config_set("await_readiness", "false")


def test_the_program_refuses_an_invalid_spec_before_declaring_anything(deployment):
    deployment.config_set("sizes.kafka_brokers", "2", path=True)
    code, _, stderr = deployment.deploy("preview")
    assert code == 2
    assert "backbone:sizes.kafka_brokers" in stderr and "odd" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr
    deployment.config_set("sizes.kafka_brokers", "3", path=True)


def test_back_to_bootstrap_deletes_every_object_and_keeps_the_store(deployment):
    deployment.config_set("tier", "bootstrap")
    summary = up(deployment)
    assert set(summary["changes"]) <= {"delete", "same"} and summary["changes"].get("delete")
    assert deployment.namespace_gone()
    backbone = deployment.outputs()["backbone"]
    assert (backbone["tier"], backbone["bootstrap"]) == ("bootstrap", {"store": STORE})
    assert "timescale" not in backbone


def test_institutional_again_then_destroy_leaves_nothing(deployment):
    deployment.config_set("tier", "institutional")
    up(deployment)
    assert ours(deployment.objects("statefulsets", "apps/v1")) == set(STATEFULSETS)
    assert deployment.outputs()["backbone"]["bootstrap"] == {"store": STORE}
    code, summary, stderr = deployment.deploy("destroy")
    assert code == 0, stderr[-3000:]
    assert summary["changes"].get("delete", 0) > 30
    assert deployment.namespace_gone()
    assert deployment.outputs() == {}
