"""Every Kubernetes object the staging stack declares, validated against the API schema.

The mocks receive the inputs already in the API's camelCase form; `plain` unwraps secrets
and turns the wire's floats back into integers, which gives the manifest `kubectl apply`
would send.
"""
from __future__ import annotations

import kubernetes_validate
import pytest

from stack_harness import plain, run_stack, stack_file_config

pytestmark = pytest.mark.timeout(60)

# The newest schema the installed kubernetes-validate ships: a field the API has since removed
# or renamed fails here first.
KUBERNETES_VERSION = kubernetes_validate.latest_version()


def kubernetes_manifests(run) -> list[dict]:
    return [plain(d.inputs) for d in run.declared if d.type.startswith("kubernetes:")]


def test_staging_declares_the_expected_objects(staging_run):
    kinds: dict[str, int] = {}
    for manifest in kubernetes_manifests(staging_run):
        kinds[manifest["kind"]] = kinds.get(manifest["kind"], 0) + 1
    assert kinds == {"Namespace": 1, "StatefulSet": 4, "Service": 9, "PodDisruptionBudget": 4,
                     "NetworkPolicy": 4, "ConfigMap": 3, "Secret": 5, "ServiceAccount": 1, "Role": 1,
                     "RoleBinding": 1}


def schema_failures(manifests: list[dict]) -> list[str]:
    failures = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {err.message}")
    return failures


def test_every_staging_object_is_valid_for_the_kubernetes_api(staging_run):
    failures = schema_failures(kubernetes_manifests(staging_run))
    assert not failures, "\n".join(failures)


def test_preferred_placement_is_valid_too():
    """The `preferred` anti-affinity has a shape of its own (weighted terms)."""
    run = run_stack("staging", {**stack_file_config("staging"), "placement": {"quorum_anti_affinity": "preferred"}})
    assert run.error is None
    failures = schema_failures(kubernetes_manifests(run))
    assert not failures, "\n".join(failures)


def test_a_single_node_kubernetes_stack_is_valid_too():
    config = {**stack_file_config("staging"), "sizes": {}, "topics": [], "redis": {}}
    run = run_stack("single", config)
    assert run.error is None
    manifests = kubernetes_manifests(run)
    assert not [m for m in manifests if m["metadata"]["name"] in ("redis-sentinel", "timescale-replica")]
    failures = schema_failures(manifests)
    assert not failures, "\n".join(failures)


def test_the_schema_check_catches_a_wrong_manifest(staging_run):
    """Guards the guard: the Python-named form the SDK takes is not a valid manifest."""
    statefulset = next(m for m in kubernetes_manifests(staging_run) if m["kind"] == "StatefulSet")
    broken = {**statefulset, "spec": {**statefulset["spec"], "service_name": "x"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
