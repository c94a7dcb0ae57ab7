"""The docker and kubernetes fault backends, checked at their client libraries' request layer.

No Docker engine and no Kubernetes API exist on these machines, so these tests pin the exact
HTTP request each fault sends (method, path, query, body) and how errors come back; they do
not prove what an engine or a cluster then does with it (docs/drills.md says so too).
"""
import json
from unittest import mock

import pytest

from backbone.drills.faults import FAULTS, FaultBackend, FaultError

docker = pytest.importorskip("docker")
requests_mock = pytest.importorskip("requests_mock")
kubernetes = pytest.importorskip("kubernetes")

from kubernetes.client import rest  # noqa: E402
import urllib3  # noqa: E402

from backbone.drills.faults_docker import DockerFaults  # noqa: E402
from backbone.drills.faults_kubernetes import KubernetesFaults, partition_policy_name  # noqa: E402

API = "http://docker.test:2375/v1.45"


# --- docker -------------------------------------------------------------------------------

@pytest.fixture
def engine():
    """A DockerClient whose HTTP transport is a requests-mock adapter: every request is
    recorded, none leaves the process. A pinned API version avoids the version probe."""
    client = docker.DockerClient(base_url="tcp://docker.test:2375", version="1.45")
    adapter = requests_mock.Adapter()
    adapter.register_uri(requests_mock.ANY, requests_mock.ANY, status_code=204)
    client.api.mount("http://", adapter)
    return client, adapter


def _sent(adapter):
    return [(r.method, r.url.removeprefix(API), r.json() if r.body else None) for r in adapter.request_history]


@pytest.mark.parametrize("fault, inject, heal", [
    ("kill", ("POST", "/containers/pg-0/kill?signal=SIGKILL", None), ("POST", "/containers/pg-0/start", None)),
    ("stop", ("POST", "/containers/pg-0/stop?t=10", None), ("POST", "/containers/pg-0/start", None)),
    ("pause", ("POST", "/containers/pg-0/pause", None), ("POST", "/containers/pg-0/unpause", None)),
    ("partition", ("POST", "/networks/backbone-dev/disconnect", {"Container": "pg-0"}),
     ("POST", "/networks/backbone-dev/connect", {"Container": "pg-0", "EndpointConfig": {}})),
])
def test_docker_fault_sends_one_engine_request(engine, fault, inject, heal):
    client, adapter = engine
    faults = DockerFaults(network="backbone-dev", client=client)
    faults.inject("pg-0", fault)
    assert _sent(adapter) == [inject]
    faults.heal("pg-0", fault)
    assert _sent(adapter) == [inject, heal]


def test_docker_unknown_container_is_named(engine):
    client, adapter = engine
    adapter.register_uri("POST", f"{API}/containers/ghost/kill", status_code=404,
                         json={"message": "No such container: ghost"})
    with pytest.raises(FaultError, match=r"no such container 'ghost'.*No such container: ghost"):
        DockerFaults(client=client).inject("ghost", "kill")


def test_docker_engine_refusal_is_a_fault_error(engine):
    client, adapter = engine
    adapter.register_uri("POST", f"{API}/containers/pg-0/pause", status_code=409,
                         json={"message": "container pg-0 is not running"})
    with pytest.raises(FaultError, match="refused: container pg-0 is not running"):
        DockerFaults(client=client).inject("pg-0", "pause")


def test_docker_partition_needs_the_network_and_sends_nothing_without_it(engine):
    client, adapter = engine
    with pytest.raises(FaultError, match="network"):
        DockerFaults(client=client).inject("pg-0", "partition")
    assert adapter.request_history == []


def test_docker_unknown_fault(engine):
    client, adapter = engine
    with pytest.raises(FaultError, match="unknown fault 'reboot'"):
        DockerFaults(client=client).inject("pg-0", "reboot")
    assert adapter.request_history == []


# --- kubernetes -----------------------------------------------------------------------------

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "kafka-1", "namespace": "staging",
                    "labels": {"statefulset.kubernetes.io/pod-name": "kafka-1", "app": "kafka"}}}


class Cluster:
    """Stands in for the API server at kubernetes.client.rest.RESTClientObject.request:
    records (method, url, body) and answers from a small table of canned responses."""

    def __init__(self):
        self.sent = []
        self.answers = {}  # (method, path) -> (status, json)

    def request(self, _rest, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        path = url.removeprefix("https://k8s.test")
        self.sent.append((method, path, body))
        status, data = self.answers.get((method, path.split("?")[0]), (200, {}))
        resp = rest.RESTResponse(urllib3.HTTPResponse(body=json.dumps(data).encode(), status=status,
                                                      reason="Not Found" if status == 404 else "OK",
                                                      headers={"Content-Type": "application/json"}))
        resp.read()
        return resp


@pytest.fixture
def cluster():
    fake = Cluster()
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="https://k8s.test"))
    def request(rest_client, *args, **kwargs):  # a plain function, so it binds like the method
        return fake.request(rest_client, *args, **kwargs)

    with mock.patch.object(rest.RESTClientObject, "request", request):
        yield fake, KubernetesFaults("staging", api_client=api)


def test_kubernetes_kill_deletes_the_pod_with_grace_period_zero(cluster):
    fake, faults = cluster
    faults.inject("kafka-1", "kill")
    assert fake.sent == [("DELETE", "/api/v1/namespaces/staging/pods/kafka-1?gracePeriodSeconds=0",
                          {"gracePeriodSeconds": 0})]


def test_kubernetes_stop_deletes_the_pod_with_its_own_grace_period(cluster):
    fake, faults = cluster
    faults.inject("kafka-1", "stop")
    assert fake.sent == [("DELETE", "/api/v1/namespaces/staging/pods/kafka-1", None)]


@pytest.mark.parametrize("fault", ["kill", "stop"])
def test_kubernetes_heal_after_delete_leaves_it_to_the_statefulset(cluster, fault):
    fake, faults = cluster
    faults.heal("kafka-1", fault)
    assert fake.sent == []


def test_kubernetes_pause_is_refused_without_a_request(cluster):
    fake, faults = cluster
    with pytest.raises(FaultError, match="^pause is not supported on kubernetes: pods cannot be frozen through the API$"):
        faults.inject("kafka-1", "pause")
    assert fake.sent == []


def test_kubernetes_partition_creates_a_deny_all_policy_and_heal_deletes_it(cluster):
    fake, faults = cluster
    fake.answers[("GET", "/api/v1/namespaces/staging/pods/kafka-1")] = (200, POD)
    faults.inject("kafka-1", "partition")
    name = partition_policy_name("kafka-1")
    assert fake.sent == [
        ("GET", "/api/v1/namespaces/staging/pods/kafka-1", None),
        ("POST", "/apis/networking.k8s.io/v1/namespaces/staging/networkpolicies", {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "staging",
                         "labels": {"app.kubernetes.io/managed-by": "backbone-drill"}},
            "spec": {"podSelector": {"matchLabels": {"statefulset.kubernetes.io/pod-name": "kafka-1"}},
                     "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}}),
    ]
    fake.sent.clear()
    faults.heal("kafka-1", "partition")
    assert fake.sent == [("DELETE", f"/apis/networking.k8s.io/v1/namespaces/staging/networkpolicies/{name}", None)]


def test_kubernetes_partition_of_a_missing_pod_names_it_and_creates_nothing(cluster):
    fake, faults = cluster
    fake.answers[("GET", "/api/v1/namespaces/staging/pods/ghost-0")] = (404, {"kind": "Status", "code": 404})
    with pytest.raises(FaultError, match="no pod 'ghost-0' in namespace 'staging'"):
        faults.inject("ghost-0", "partition")
    assert [m for m, *_ in fake.sent] == ["GET"]


def test_kubernetes_partition_refuses_a_pod_outside_a_statefulset(cluster):
    fake, faults = cluster
    loose = {**POD, "metadata": {"name": "kafka-1", "labels": {"app": "kafka"}}}
    fake.answers[("GET", "/api/v1/namespaces/staging/pods/kafka-1")] = (200, loose)
    with pytest.raises(FaultError, match="StatefulSet member"):
        faults.inject("kafka-1", "partition")
    assert [m for m, *_ in fake.sent] == ["GET"]


def test_kubernetes_leftover_partition_policy_is_reported(cluster):
    fake, faults = cluster
    fake.answers[("GET", "/api/v1/namespaces/staging/pods/kafka-1")] = (200, POD)
    fake.answers[("POST", "/apis/networking.k8s.io/v1/namespaces/staging/networkpolicies")] = (409, {"code": 409})
    with pytest.raises(FaultError, match="exists already; heal it first"):
        faults.inject("kafka-1", "partition")


def test_kubernetes_heal_of_an_already_removed_policy_is_harmless(cluster):
    fake, faults = cluster
    name = partition_policy_name("kafka-1")
    fake.answers[("DELETE", f"/apis/networking.k8s.io/v1/namespaces/staging/networkpolicies/{name}")] = (404, {})
    faults.heal("kafka-1", "partition")


def test_kubernetes_kill_of_a_missing_pod_names_it(cluster):
    fake, faults = cluster
    fake.answers[("DELETE", "/api/v1/namespaces/staging/pods/ghost-0")] = (404, {"kind": "Status", "code": 404})
    with pytest.raises(FaultError, match="kill ghost-0: no pod 'ghost-0'"):
        faults.inject("ghost-0", "kill")


# --- both -------------------------------------------------------------------------------------

def test_backends_satisfy_the_protocol():
    def platform_of(backend: FaultBackend) -> str:
        return backend.platform

    assert platform_of(DockerFaults()) == "docker"
    assert platform_of(KubernetesFaults("ns")) == "kubernetes"
    assert FAULTS == ("kill", "stop", "pause", "partition")
