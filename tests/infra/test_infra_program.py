"""The whole program under mocks: config errors stop it before any resource; bootstrap
declares nothing; each run is isolated from the next."""
from __future__ import annotations

import json

import pulumi
import pytest

from stack_harness import run_stack, stack_file_config

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("config, key", [
    ({"tier": "institutional", "sizes": {"kafka_brokers": 0}}, "backbone:sizes.kafka_brokers: must be >= 1"),
    ({"tier": "institutional", "platform": "kubernetes", "sizes": {"kafka_brokers": 1},
      "topics": [{"name": "ingest.events", "replication_factor": 3}]}, "backbone:topics[0].replication_factor:"),
    ({"tier": "institutional", "sizes": "three brokers"}, "backbone:sizes: must be an object"),
    ({"tier": "institutional", "topics": "ingest.events"}, "backbone:topics: must be a list"),
    ({"tier": "institutional", "size": {"kafka_brokers": 3}}, "backbone:size: unknown key"),
    ({"tier": "institutional", "images": {"redis": "redis:latest"}}, "backbone:images.redis:"),
])
def test_a_config_error_names_the_key_and_declares_nothing(config, key):
    result = run_stack("dev", config)
    assert isinstance(result.error, pulumi.RunError)
    assert key in str(result.error)
    assert result.declared == []
    assert result.outputs == {}


def test_all_problems_of_a_stack_are_reported_together():
    result = run_stack("dev", {"tier": "gold", "sizes": {"kafka_brokers": 0}, "sizee": {}})
    message = str(result.error)
    for line in ("backbone:tier: must be one of", "backbone:sizes.kafka_brokers: must be >= 1",
                 "backbone:sizee: unknown key"):
        assert line in message
    assert result.declared == []


def test_the_bootstrap_tier_declares_nothing_and_points_at_the_store(bootstrap_run):
    assert bootstrap_run.declared == []
    public = bootstrap_run.outputs["backbone"]
    assert public["tier"] == "bootstrap"
    assert public["bootstrap"] == {"store": "/var/lib/backbone/store.db"}
    assert not {"timescale", "redis", "kafka"} & set(public)
    assert bootstrap_run.outputs["backbone_secrets"] == {}
    assert "backbone_secrets" in bootstrap_run.secret_outputs


def test_bootstrap_on_kubernetes_declares_nothing():
    result = run_stack("staging", {**stack_file_config("staging"), "tier": "bootstrap"})
    assert result.error is None
    assert result.declared == []
    assert result.outputs["backbone"]["platform"] == "kubernetes"
    assert result.outputs["backbone"]["bootstrap"]["store"] == ".backbone/bootstrap/backbone.db"


def test_the_tier_switch_is_reversible():
    """bootstrap -> institutional -> bootstrap on one stack gives the same outputs back."""
    config = stack_file_config("dev")
    before = run_stack("dev", {**config, "tier": "bootstrap"})
    during = run_stack("dev", config)
    after = run_stack("dev", {**config, "tier": "bootstrap"})
    assert during.error is None and during.declared
    assert json.dumps(before.outputs, sort_keys=True) == json.dumps(after.outputs, sort_keys=True)
    assert before.declared == after.declared == []


def test_runs_do_not_leak_into_each_other():
    staging = run_stack("staging", stack_file_config("staging"))
    dev = run_stack("dev", stack_file_config("dev"))
    assert staging.error is None and dev.error is None
    assert not [d for d in dev.declared if d.type.startswith("kubernetes:")]
    assert not [d for d in staging.declared if d.type.startswith("docker:")]
    assert dev.outputs["backbone"]["environment"] == "dev"
    # The config of a run is gone afterwards.
    assert pulumi.Config("backbone").get("platform") is None


@pytest.mark.parametrize("fixture, platform", [("dev_run", "docker"), ("staging_run", "kubernetes")])
def test_every_service_resource_is_a_child_of_its_component(request, fixture, platform):
    run = request.getfixturevalue(fixture)
    components = {"Timescale", "Redis", "Kafka", "Namespace"}
    for declared in run.declared:
        if declared.type.startswith("backbone:") or declared.type == "docker:index/network:Network":
            continue
        chain = run.parent_chain(declared.name)
        assert chain[-1] == declared.type
        parent = chain[-2] if len(chain) > 1 else "(stack)"
        assert parent.startswith(f"backbone:{platform}:") and parent.split(":")[-1] in components, \
            f"{declared.type} {declared.name} has parent {parent}"
