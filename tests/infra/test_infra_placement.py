"""Where the staging stack's HA members may run: one per node, spread over zones, and
disruption budgets that keep each quorum through node drains."""
from __future__ import annotations

import pulumi
import pytest

from stack_harness import plain, run_stack, stack_file_config

pytestmark = pytest.mark.timeout(60)

NODE, ZONE = "kubernetes.io/hostname", "topology.kubernetes.io/zone"
QUORUMS = ("kafka", "timescale", "redis-sentinel")  # placed by placement.quorum_anti_affinity
HA_STATEFULSETS = (*QUORUMS, "redis")  # redis: the primary + replicas, always `preferred`


def staging_with(**changes) -> dict:
    return {**stack_file_config("staging"), **changes}


@pytest.fixture(scope="module")
def unset_placement_run():
    config = {key: value for key, value in stack_file_config("staging").items() if key != "placement"}
    run = run_stack("staging", config)
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def preferred_run():
    run = run_stack("staging", staging_with(placement={"quorum_anti_affinity": "preferred"}))
    assert run.error is None, run.error
    return run


def statefulset(run, name: str) -> dict:
    return plain(run.k8s("StatefulSet", name).inputs)["spec"]


def budget(run, name: str) -> dict:
    return plain(run.k8s("PodDisruptionBudget", name).inputs)["spec"]


def node_rule(run, name: str) -> tuple[str, dict]:
    """(mode, pod affinity term) of the StatefulSet's one pod anti-affinity rule."""
    rules = statefulset(run, name)["template"]["spec"]["affinity"]["podAntiAffinity"]
    [(field, [rule])] = rules.items()
    if field == "requiredDuringSchedulingIgnoredDuringExecution":
        return "required", rule
    assert field == "preferredDuringSchedulingIgnoredDuringExecution", field
    assert rule["weight"] == 100
    return "preferred", rule["podAffinityTerm"]


@pytest.mark.parametrize("run", ["staging_run", "unset_placement_run"])
@pytest.mark.parametrize("name", QUORUMS)
def test_quorum_members_never_share_a_node_by_default(request, run, name):
    run = request.getfixturevalue(run)
    mode, term = node_rule(run, name)
    assert mode == "required"
    assert term == {"labelSelector": {"matchLabels": statefulset(run, name)["selector"]["matchLabels"]},
                    "topologyKey": NODE}


@pytest.mark.parametrize("run", ["staging_run", "preferred_run"])
def test_redis_data_pods_only_prefer_separate_nodes(request, run):
    mode, term = node_rule(request.getfixturevalue(run), "redis")
    assert mode == "preferred" and term["topologyKey"] == NODE


@pytest.mark.parametrize("name", HA_STATEFULSETS)
def test_preferred_placement_relaxes_every_quorum(preferred_run, name):
    mode, term = node_rule(preferred_run, name)
    assert mode == "preferred"
    assert term == {"labelSelector": {"matchLabels": statefulset(preferred_run, name)["selector"]["matchLabels"]},
                    "topologyKey": NODE}


@pytest.mark.parametrize("name", HA_STATEFULSETS)
def test_every_ha_statefulset_spreads_over_zones(staging_run, name):
    spec = statefulset(staging_run, name)
    assert spec["template"]["spec"]["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": spec["selector"]["matchLabels"]}}]


@pytest.mark.parametrize("name", HA_STATEFULSETS)
def test_placement_selectors_pick_exactly_the_statefulsets_pods(staging_run, name):
    spec = statefulset(staging_run, name)
    pods = spec["selector"]["matchLabels"]
    _, term = node_rule(staging_run, name)
    [zones] = spec["template"]["spec"]["topologySpreadConstraints"]
    for chosen in (term["labelSelector"], zones["labelSelector"], budget(staging_run, name)["selector"]):
        assert chosen == {"matchLabels": pods}
    assert pods.items() <= spec["template"]["metadata"]["labels"].items()
    for other in HA_STATEFULSETS:
        if other != name:
            labels = statefulset(staging_run, other)["template"]["metadata"]["labels"]
            assert not pods.items() <= labels.items(), f"{name}'s selector also picks {other}'s pods"


def test_budgets_keep_a_majority_of_each_quorum(staging_run):
    values = {name: {k: v for k, v in budget(staging_run, name).items() if k != "selector"}
              for name in HA_STATEFULSETS}
    assert values == {"kafka": {"minAvailable": 2}, "redis-sentinel": {"minAvailable": 2},
                      "timescale": {"maxUnavailable": 1}, "redis": {"maxUnavailable": 1}}


def test_quorum_budgets_follow_the_member_count():
    sizes = {**stack_file_config("staging")["sizes"], "kafka_brokers": 5, "redis_sentinels": 5}
    run = run_stack("staging", staging_with(sizes=sizes))
    assert run.error is None, run.error
    # Sentinels need a majority; Kafka one broker down at a time, so that no partition with
    # replication factor 3 and min.insync.replicas 2 stops taking acks=all writes in a drain
    assert budget(run, "kafka")["minAvailable"] == 4
    assert budget(run, "redis-sentinel")["minAvailable"] == 3


def test_single_member_statefulsets_get_no_placement_and_a_drainable_budget():
    run = run_stack("single", staging_with(sizes={}, topics=[], redis={}))
    assert run.error is None, run.error
    for name in ("kafka", "timescale", "redis"):
        pod = statefulset(run, name)["template"]["spec"]
        assert "affinity" not in pod and "topologySpreadConstraints" not in pod, name
        # minAvailable 1 of 1 pod would refuse every eviction, and so every drain of its node.
        assert "minAvailable" not in budget(run, name) and budget(run, name)["maxUnavailable"] == 1, name


def test_an_invalid_placement_is_a_config_error_naming_the_key():
    run = run_stack("staging", staging_with(placement={"quorum_anti_affinity": "strict"}))
    assert isinstance(run.error, pulumi.RunError)
    assert "backbone:placement.quorum_anti_affinity: must be one of 'required' or 'preferred'" in str(run.error)
    assert run.declared == []
