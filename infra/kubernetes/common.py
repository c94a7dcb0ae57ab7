"""Pieces every Kubernetes component uses.

Every pod runs as a non-root user with no capabilities and the runtime's seccomp profile,
which is what the namespace's `restricted` Pod Security level enforces anyway; every
stateful service gets a headless Service (stable pod DNS), a client Service, a
PodDisruptionBudget and a NetworkPolicy that lets namespace pods reach the client ports and
only the service's own pods reach the peer ports. The members of a StatefulSet of more than
one pod are kept off each other's nodes and spread over zones (`member_placement`), and a
voting set's budget keeps its majority through drains (`disruption_budget`).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import generated
from infra.spec import AntiAffinity, Resources

# `backbone:await_readiness: false` (an API-only cluster: no pod ever runs). The provider's own
# waits for these kinds need running pods (a StatefulSet's ready replicas, a Service's
# endpoints); `pulumi.com/waitFor` replaces them with states the API server and the controllers
# reach without a node. Not `pulumi.com/skipAwait`: on a StatefulSet it also skips waiting for
# the delete, so a replacement re-created the object while the old one was still terminating.
API_ONLY_WAITS = {
    "kubernetes:apps/v1:StatefulSet": "jsonpath={.status.observedGeneration}",  # its controller saw it
    "kubernetes:core/v1:Service": "jsonpath={.spec.clusterIP}",  # the API server allocated it
}
WAIT_FOR = "pulumi.com/waitFor"
MANAGED_BY = {"app.kubernetes.io/part-of": "backbone", "app.kubernetes.io/managed-by": "pulumi"}
NODE = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def api_only_waits(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """Annotates the kinds of API_ONLY_WAITS with their wait (a resource transformation)."""
    wait = API_ONLY_WAITS.get(args.type_)
    if wait is None or "metadata" not in args.props:
        return None
    meta = dict(args.props["metadata"] or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), WAIT_FOR: wait}
    return pulumi.ResourceTransformationResult({**args.props, "metadata": meta}, args.opts)


def selector(component: str) -> dict[str, str]:
    """The labels that pick a component's pods; never change them on a live StatefulSet."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": "backbone"}


def labels(component: str) -> dict[str, str]:
    return {**selector(component), **MANAGED_BY}


def metadata(name: str, namespace: pulumi.Input[str], component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels(component), **extra}


def pod_security(uid: int) -> dict[str, Any]:
    return {"run_as_non_root": True, "run_as_user": uid, "run_as_group": uid, "fs_group": uid,
            "fs_group_change_policy": "OnRootMismatch", "seccomp_profile": {"type": "RuntimeDefault"}}


def container_security() -> dict[str, Any]:
    return {"allow_privilege_escalation": False, "run_as_non_root": True, "privileged": False,
            "capabilities": {"drop": ["ALL"]}, "seccomp_profile": {"type": "RuntimeDefault"}}


def resources(spec: Resources) -> dict[str, Any]:
    return {"requests": {"cpu": spec.requests.cpu, "memory": spec.requests.memory},
            "limits": {"cpu": spec.limits.cpu, "memory": spec.limits.memory}}


def exec_probe(command: str, period: int = 10, timeout: int = 5, failures: int = 3,
               initial_delay: int = 0) -> dict[str, Any]:
    return {"exec_": {"command": ["sh", "-c", command]}, "period_seconds": period,
            "timeout_seconds": timeout, "failure_threshold": failures, "initial_delay_seconds": initial_delay}


def tcp_probe(port: int, period: int = 10, failures: int = 3, initial_delay: int = 0) -> dict[str, Any]:
    return {"tcp_socket": {"port": port}, "period_seconds": period, "timeout_seconds": 5,
            "failure_threshold": failures, "initial_delay_seconds": initial_delay}


def http_probe(path: str, port: int, period: int = 10, failures: int = 3, https: bool = False) -> dict[str, Any]:
    # HTTPS: the kubelet does not verify the certificate, it only needs the endpoint's answer
    return {"http_get": {"path": path, "port": port, "scheme": "HTTPS" if https else "HTTP"},
            "period_seconds": period, "timeout_seconds": 5, "failure_threshold": failures}


def pod_env(*names: str) -> list[dict[str, Any]]:
    """Downward-API variables; later `$(NAME)` references in env and args expand them."""
    fields = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_IP": "status.podIP",
              # The StatefulSet controller labels each pod with its ordinal.
              "POD_INDEX": "metadata.labels['apps.kubernetes.io/pod-index']"}
    return [{"name": name, "value_from": {"field_ref": {"field_path": fields[name]}}} for name in names]


def tls_secret(resource_name: str, name: str, namespace: pulumi.Input[str], component: str, service: str,
               parent: pulumi.Resource) -> k8s.core.v1.Secret:
    """A kubernetes.io/tls Secret with the service's certificate and key and the stack's CA
    (`ca.crt`), from the stack's config (infra/certificates.py)."""
    key = generated.secret(f"tls_{service}_key")
    cert, ca = generated.certificate(f"tls_{service}_cert"), generated.certificate("tls_ca_pem")
    return k8s.core.v1.Secret(
        resource_name, metadata=metadata(name, namespace, component), type="kubernetes.io/tls",
        string_data=key.apply(lambda k: {"tls.crt": cert, "tls.key": k, "ca.crt": ca}),
        opts=pulumi.ResourceOptions(parent=parent))


def secret_volume(name: str, secret: k8s.core.v1.Secret) -> dict[str, Any]:
    """A Secret as read-only files: owner root, group the pod's fsGroup, 0440 (PostgreSQL and
    libpq accept a root-owned key readable by the group; nobody else reads any of it)."""
    return {"name": name, "secret": {"secret_name": secret.metadata.apply(lambda m: m.name), "default_mode": 0o440}}


def certificate_checksum(*services: str) -> str:
    """Part of the pod template's checksum: a renewed certificate rolls the pods that use it."""
    return checksum({s: generated.certificate(f"tls_{s}_cert") or "" for s in services})


def data_claim(size: str, storage_class: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storage_class_name"] = storage_class
    return {"metadata": {"name": "data"}, "spec": spec}


def checksum(*documents: Mapping[str, str]) -> str:
    """Pod-template annotation: a config change changes the template, so pods roll."""
    return hashlib.sha256(json.dumps(documents, sort_keys=True).encode()).hexdigest()


def ports(named: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"name": name, "port": port, "target_port": name} for name, port in named.items()]


def headless_service(name: str, namespace: pulumi.Input[str], component: str, named_ports: Mapping[str, int],
                     parent: pulumi.Resource) -> k8s.core.v1.Service:
    # publish_not_ready_addresses: peers must find each other before any of them is ready
    # (KRaft quorum, replicas syncing from a primary).
    return k8s.core.v1.Service(
        f"{name}-service", metadata=metadata(name, namespace, component),
        spec={"cluster_ip": "None", "publish_not_ready_addresses": True, "selector": selector(component),
              "ports": ports(named_ports)},
        opts=pulumi.ResourceOptions(parent=parent))


def client_service(name: str, namespace: pulumi.Input[str], component: str, named_ports: Mapping[str, int],
                   parent: pulumi.Resource, extra_selector: Mapping[str, str] | None = None) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"{name}-service", metadata=metadata(name, namespace, component),
        spec={"type": "ClusterIP", "selector": {**selector(component), **(extra_selector or {})},
              "ports": ports(named_ports)},
        opts=pulumi.ResourceOptions(parent=parent))


def majority(members: int) -> int:
    return members // 2 + 1


def member_placement(component: str, members: int, anti_affinity: AntiAffinity) -> dict[str, Any]:
    """Pod-spec fields (`affinity`, `topology_spread_constraints`) that keep the members of
    one StatefulSet apart: at most one per node (`required`), or one per node while nodes
    last (`preferred`, weight 100), and spread over zones as evenly as the cluster allows.

    A single member has nobody to keep apart from: it gets neither field, so a dev-sized
    stack carries no scheduling rule that could only ever be satisfied trivially.
    """
    if members < 2:
        return {}
    # The StatefulSet's own selector: it picks exactly its pods, and (a term's default) only in
    # its namespace, so neither the other services nor another stack's pods repel them.
    pods = {"match_labels": selector(component)}
    same_node = {"label_selector": pods, "topology_key": NODE}
    if anti_affinity == "required":
        apart = {"required_during_scheduling_ignored_during_execution": [same_node]}
    else:
        apart = {"preferred_during_scheduling_ignored_during_execution": [{"weight": 100,
                                                                           "pod_affinity_term": same_node}]}
    # ScheduleAnyway: zones only rank nodes, so a single-zone cluster, or one whose nodes carry
    # no zone label, still runs every member.
    zones = {"max_skew": 1, "topology_key": ZONE, "when_unsatisfiable": "ScheduleAnyway", "label_selector": pods}
    return {"affinity": {"pod_anti_affinity": apart}, "topology_spread_constraints": [zones]}


def disruption_budget(name: str, namespace: pulumi.Input[str], component: str, parent: pulumi.Resource,
                      voters: int = 0, keep: int | None = None) -> k8s.policy.v1.PodDisruptionBudget:
    """`voters`: the member count of a set that must keep a majority (KRaft voters, Sentinels).
    `keep`: members that must stay up, when the set needs more than a majority (Kafka:
    replicas of a partition live on several brokers, so more than one broker down at once can
    take a partition below min.insync.replicas)."""
    floor = max(majority(voters), keep or 0)
    if voters >= 3 and floor < voters:
        # A drain may take members only while enough stay up to elect / agree on a failover
        # (and, for Kafka, to keep every partition writable); derived from the count, so it
        # stays right when the size changes.
        budget: dict[str, int] = {"min_available": floor}
    else:
        # One voluntary disruption at a time: node drains proceed, a primary and its
        # synchronous standby never go down together. Also for voters below three: their
        # majority is every member, and a budget of all of them would block every drain of
        # their nodes forever (minAvailable 1 of a single pod can never allow an eviction).
        budget = {"max_unavailable": 1}
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb", metadata=metadata(name, namespace, component),
        spec={**budget, "selector": {"match_labels": selector(component)}},
        opts=pulumi.ResourceOptions(parent=parent))


def network_policy(name: str, namespace: pulumi.Input[str], component: str, client_ports: Sequence[int],
                   peer_ports: Sequence[int], parent: pulumi.Resource,
                   clients: Sequence[Mapping[str, Any]] | None = None) -> k8s.networking.v1.NetworkPolicy:
    """`clients`: the peers that may reach the client ports (default: every pod of the namespace)."""
    rules: list[dict[str, Any]] = [{
        # An empty pod selector matches every pod of this namespace, and only those.
        "from_": list(clients) if clients is not None else [{"pod_selector": {}}],
        "ports": [{"protocol": "TCP", "port": port} for port in client_ports],
    }]
    if peer_ports:
        rules.append({"from_": [{"pod_selector": {"match_labels": selector(component)}}],
                      "ports": [{"protocol": "TCP", "port": port} for port in peer_ports]})
    return k8s.networking.v1.NetworkPolicy(
        f"{name}-network-policy", metadata=metadata(name, namespace, component),
        spec={"pod_selector": {"match_labels": selector(component)}, "policy_types": ["Ingress"],
              "ingress": rules},
        opts=pulumi.ResourceOptions(parent=parent))
