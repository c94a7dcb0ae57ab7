"""The stack side of a tier switch: `backbone:tier` flipped on one stack whose
`backbone:bootstrap_store` stays put. Both ends export `bootstrap.store`, so the
institutional contract names the store it came from (and a rollback returns to), and
switching back gives the bootstrap contract again (docs/tiers.md, docs/stacks.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from backbone.contract import SECRET_FIELDS, Contract, merge_outputs
from stack_harness import MOCK_SECRETS, StackRun, mock_contract_secrets, mock_password, run_stack, stack_file_config

pytestmark = pytest.mark.timeout(120)

STORE = "/srv/backbone/tier-switch/store.db"
SERVICES = ("Timescale", "Redis", "Kafka")


@dataclass
class Switch:
    platform: str
    before: StackRun  # tier bootstrap
    during: StackRun  # the same config with tier institutional
    after: StackRun  # back to bootstrap


def _run(stack: str, config: dict) -> StackRun:
    result = run_stack(stack, config)
    if result.error is not None:
        raise AssertionError(f"stack {stack} failed: {result.error!r}") from result.error
    return result


@pytest.fixture(scope="module", params=[("dev", "docker"), ("staging", "kubernetes")], ids=["docker", "kubernetes"])
def switch(request) -> Switch:
    stack, platform = request.param
    config = {**stack_file_config(stack), "bootstrap_store": STORE}
    return Switch(platform,
                  before=_run(stack, {**config, "tier": "bootstrap"}),
                  during=_run(stack, {**config, "tier": "institutional"}),
                  after=_run(stack, {**config, "tier": "bootstrap"}))


def exported(run: StackRun) -> dict:
    """The stack outputs as `pulumi stack output --json --show-secrets` prints them."""
    return json.loads(json.dumps(run.outputs))


def contract_of(run: StackRun) -> Contract:
    return Contract.model_validate(merge_outputs(exported(run)))


def components(run: StackRun) -> set[str]:
    return {d.type for d in run.declared if d.type.startswith("backbone:")}


def assert_bootstrap_end(run: StackRun, platform: str) -> None:
    outputs = exported(run)
    public = outputs["backbone"]
    assert public["tier"] == "bootstrap" and public["platform"] == platform
    assert public["bootstrap"] == {"store": STORE}
    assert not {"timescale", "redis", "kafka"} & set(public)
    assert outputs["backbone_secrets"] == {}
    assert run.declared == [], "the bootstrap tier declares no resources"
    contract = contract_of(run)
    assert contract.tier == "bootstrap" and contract.bootstrap.store == STORE
    assert contract.timescale is None and contract.redis is None and contract.kafka is None


def test_bootstrap_tier_exports_the_configured_store(switch):
    assert_bootstrap_end(switch.before, switch.platform)


def test_institutional_tier_keeps_the_store_it_came_from(switch):
    run = switch.during
    public = exported(run)["backbone"]
    assert public["tier"] == "institutional" and public["platform"] == switch.platform
    assert {"timescale", "redis", "kafka"} <= set(public)
    assert public["bootstrap"] == {"store": STORE}, "the institutional contract names its bootstrap store"
    contract = contract_of(run)
    assert contract.tier == "institutional"
    assert contract.bootstrap.store == contract_of(switch.before).bootstrap.store == STORE
    assert contract.missing("timescale", "redis", "kafka") == []
    # the redaction-safe view keeps the store: it holds no secret
    assert contract.manifest()["bootstrap"] == {"store": STORE}


def test_institutional_tier_declares_the_services(switch):
    run = switch.during
    assert {f"backbone:{switch.platform}:{s}" for s in SERVICES} <= components(run)
    if switch.platform == "docker":
        containers = {d.name for d in run.of_type("docker:index/container:Container")}
        assert containers == {"timescale-container", "redis-container", "kafka-container"}
    else:
        kinds = {(d.inputs.get("kind"), d.inputs.get("metadata", {}).get("name")) for d in run.declared}
        assert {("StatefulSet", "timescale"), ("StatefulSet", "redis"), ("StatefulSet", "kafka")} <= kinds


def test_institutional_passwords_travel_only_in_the_secrets_output(switch):
    run = switch.during
    outputs = exported(run)
    passwords = set(MOCK_SECRETS.values())
    assert outputs["backbone_secrets"] == mock_contract_secrets(sentinels=switch.platform == "kubernetes")
    assert run.secret_outputs == {"backbone_secrets"}
    public_text = json.dumps(outputs["backbone"])
    assert not [p for p in passwords if p in public_text]
    for section, fields in SECRET_FIELDS.items():
        assert not set(fields) & set(outputs["backbone"].get(section, {})), section
    manifest_text = json.dumps(contract_of(run).manifest())
    assert not [p for p in passwords if p in manifest_text]


def test_back_to_bootstrap_gives_the_bootstrap_contract_again(switch):
    assert_bootstrap_end(switch.after, switch.platform)
    assert exported(switch.after) == exported(switch.before)
    assert contract_of(switch.after).bootstrap.store == contract_of(switch.during).bootstrap.store == STORE
