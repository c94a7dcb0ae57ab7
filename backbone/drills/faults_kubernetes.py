"""Fault injection on the kubernetes platform, through the official client (CoreV1Api,
NetworkingV1Api) in one namespace.

- kill: delete the pod with grace period 0 (the kubelet SIGKILLs it); stop: delete it with
  its own grace period (SIGTERM, then SIGKILL). Bringing the member back is the
  StatefulSet controller's job, so healing either is a no-op: the drill measures how long
  the service takes to recover on its own, which is the point.
- pause: refused. The API cannot freeze a pod's processes (no SIGSTOP, no cgroup freeze).
- partition: a NetworkPolicy selecting the one pod (StatefulSets label each pod with its
  name) with no ingress and no egress rule; healing deletes it. See docs/drills.md for
  what a deny-all policy can and cannot cut when other policies allow traffic.
"""
from __future__ import annotations

from typing import Any

from .faults import FAULTS, ApiFaults, FaultError

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POLICY_PREFIX = "backbone-drill-partition-"


def partition_policy_name(pod: str) -> str:
    return (POLICY_PREFIX + pod)[:253]


class KubernetesFaults(ApiFaults):
    platform = "kubernetes"

    @classmethod
    def create(cls, options) -> KubernetesFaults:
        return cls(namespace=options.namespace)

    def __init__(self, namespace: str, api_client: Any = None):
        """`api_client` is a kubernetes.client.ApiClient; without one, the in-cluster
        service account is used, else the current kubeconfig context."""
        self.namespace = namespace
        self._api_client = api_client

    def _client(self):
        from kubernetes import client, config

        if self._api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api_client = client.ApiClient()
        return self._api_client

    def _core(self):
        from kubernetes import client
        return client.CoreV1Api(self._client())

    def _networking(self):
        from kubernetes import client
        return client.NetworkingV1Api(self._client())

    def inject(self, member: str, fault: str) -> None:
        _known(fault)
        if fault == "pause":
            raise FaultError("pause is not supported on kubernetes: pods cannot be frozen through the API")
        if fault == "kill":
            from kubernetes import client

            # zero in the query and in DeleteOptions, as `kubectl delete --grace-period=0` sends it
            self._call(member, fault, lambda: self._core().delete_namespaced_pod(
                member, self.namespace, grace_period_seconds=0, body=client.V1DeleteOptions(grace_period_seconds=0)))
        elif fault == "stop":
            # no grace period given: the pod's terminationGracePeriodSeconds applies
            self._call(member, fault, lambda: self._core().delete_namespaced_pod(member, self.namespace))
        else:
            self._partition(member)

    def heal(self, member: str, fault: str) -> None:
        _known(fault)
        if fault in ("kill", "stop"):
            return  # the StatefulSet recreates the pod; the drill waits for the service itself
        if fault == "pause":
            raise FaultError("pause is not supported on kubernetes: pods cannot be frozen through the API")
        from kubernetes.client.exceptions import ApiException

        try:
            self._networking().delete_namespaced_network_policy(partition_policy_name(member), self.namespace)
        except ApiException as exc:
            if exc.status != 404:  # already gone: healing twice is harmless
                raise FaultError(f"reconnect {member}: {_explanation(exc)}") from None

    def _partition(self, member: str) -> None:
        from kubernetes import client

        # A policy selecting a pod that does not exist is accepted and cuts nothing, so
        # check that the pod is there and carries the label the policy selects on.
        pod = self._call(member, "partition", lambda: self._core().read_namespaced_pod(member, self.namespace))
        labels = (pod.metadata.labels or {}) if pod is not None and pod.metadata is not None else {}
        if labels.get(POD_NAME_LABEL) != member:
            raise FaultError(f"partition {member}: the pod has no {POD_NAME_LABEL}={member} label "
                             "(is it a StatefulSet member?)")
        policy = client.V1NetworkPolicy(
            api_version="networking.k8s.io/v1", kind="NetworkPolicy",
            metadata=client.V1ObjectMeta(name=partition_policy_name(member), namespace=self.namespace,
                                         labels={"app.kubernetes.io/managed-by": "backbone-drill"}),
            spec=client.V1NetworkPolicySpec(
                pod_selector=client.V1LabelSelector(match_labels={POD_NAME_LABEL: member}),
                policy_types=["Ingress", "Egress"], ingress=[], egress=[]))
        from kubernetes.client.exceptions import ApiException

        try:
            self._networking().create_namespaced_network_policy(self.namespace, policy)
        except ApiException as exc:
            if exc.status == 409:
                # a leftover from an interrupted drill: the pod is cut off already, and a
                # drill started now would measure nothing
                raise FaultError(f"partition {member}: NetworkPolicy {partition_policy_name(member)} exists "
                                 "already; heal it first") from None
            raise FaultError(f"partition {member}: {_explanation(exc)}") from None

    def _call(self, member: str, action: str, call):
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                raise FaultError(f"{action} {member}: no pod {member!r} in namespace {self.namespace!r}") from None
            raise FaultError(f"{action} {member}: {_explanation(exc)}") from None
        except HTTPError as exc:  # the API server is unreachable
            raise FaultError(f"{action} {member}: cannot reach the Kubernetes API ({type(exc).__name__})") from None


def _known(fault: str) -> None:
    if fault not in FAULTS:
        raise FaultError(f"unknown fault {fault!r} (one of {', '.join(FAULTS)})")


def _explanation(exc) -> str:
    return f"the API answered {exc.status} {exc.reason or ''}".rstrip()
