"""infra/spec.py as plain Python, and Pulumi.yaml / the stack files against it."""
from __future__ import annotations

import pytest
import yaml

from infra.generated import ENCRYPTED_KEYS, GENERATED_KEYS
from infra.spec import SCALAR_KEYS, STRUCTURED_KEYS, SpecError, StackSpec, build_spec, cpu_millis, memory_bytes
from stack_harness import ROOT, stack_file_config

pytestmark = pytest.mark.timeout(60)

HA = {"kafka_brokers": 3, "redis_replicas": 2, "redis_sentinels": 3, "timescale_replicas": 1}


def problems(values: dict, stack: str = "test") -> str:
    with pytest.raises(SpecError) as caught:
        build_spec(values, stack)
    return str(caught.value)


def project_config() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


def test_defaults_are_the_bootstrap_tier_on_docker():
    spec = build_spec({}, "dev")
    assert (spec.stack, spec.tier, spec.platform, spec.declares_services) == ("dev", "bootstrap", "docker", False)
    assert [t.name for t in spec.topics] == ["ingest.events", "ingest.metrics", "ingest.deadletter"]


@pytest.mark.parametrize("values, message", [
    ({"sizes": {"kafka_brokers": 0}}, "backbone:sizes.kafka_brokers: must be >= 1"),
    ({"tier": "gold"}, "backbone:tier: must be one of 'bootstrap' or 'institutional'"),
    ({"platform": "nomad"}, "backbone:platform: must be one of 'docker' or 'kubernetes'"),
    ({"sizez": {}}, "backbone:sizez: unknown key"),
    ({"sizes": {"kafka_broker": 3}}, "backbone:sizes.kafka_broker: unknown key"),
    ({"ports": {"redis": 80}}, "backbone:ports.redis: must be >= 1024"),
    ({"ports": {"redis": 5432}}, "backbone:ports: services need distinct host ports"),
    ({"images": {"redis": "redis:latest"}}, "backbone:images.redis: 'redis:latest' uses 'latest'"),
    ({"images": {"kafka": "apache/kafka"}}, "backbone:images.kafka: 'apache/kafka' has no tag"),
    ({"namespace": "Backbone_Staging"}, "backbone:namespace: 'Backbone_Staging' is not a DNS label"),
    ({"topics": [{"name": "ingest.events", "partitions": 0}]}, "backbone:topics[0].partitions: must be >= 1"),
    ({"topics": [{"name": "__consumer"}]}, "backbone:topics[0].name: topic '__consumer'"),
    ({"objectives": {"kafka": {"rto_s": 0, "rpo_s": 1}}}, "backbone:objectives.kafka.rto_s: must be > 0"),
    ({"cache_policy": {"ttl_seconds": "soon"}}, "backbone:cache_policy.ttl_seconds: must be an integer"),
    ({"failure_detection": {"patroni": {"ttl": 10}}},
     "backbone:failure_detection.patroni.ttl: must be >= 20"),
    ({"failure_detection": {"patroni": {"ttl": 20, "loop_wait": 10, "retry_timeout": 6}}},
     "backbone:failure_detection.patroni: ttl (20) must be >= loop_wait + 2 * retry_timeout (22)"),
    ({"failure_detection": {"sentinel": {"down_after_ms": 20000}}},
     "backbone:failure_detection.sentinel: failover_timeout_ms must be longer than down_after_ms"),
    ({"sizes": {"resources": {"redis": {"requests": {"cpu": "2", "memory": "1Gi"},
                                        "limits": {"cpu": "1", "memory": "1Gi"}}}}},
     "backbone:sizes.resources.redis: limits.cpu 1 is below requests.cpu 2"),
    ({"sizes": {"storage": {"kafka": "lots"}}}, "backbone:sizes.storage.kafka: 'lots' is not a memory quantity"),
    ({"placement": {"quorum_anti_affinity": "always"}},
     "backbone:placement.quorum_anti_affinity: must be one of 'required' or 'preferred'"),
    ({"placement": {"anti_affinity": "required"}}, "backbone:placement.anti_affinity: unknown key"),
    ({"placement": "required"}, "backbone:placement: must be an object"),
])
def test_a_config_mistake_names_its_key(values, message):
    assert message in problems(values)


def test_every_problem_is_reported_at_once():
    error = problems({"tier": "gold", "sizes": {"kafka_brokers": 0}})
    assert "backbone:tier:" in error and "backbone:sizes.kafka_brokers:" in error


def test_docker_runs_one_node_per_service():
    error = problems({"platform": "docker", "sizes": HA})
    for key in HA:
        assert f"backbone:sizes.{key}: must be" in error


def test_topic_replication_cannot_exceed_the_brokers():
    topics = [{"name": "ingest.events", "replication_factor": 3}]
    error = problems({"platform": "kubernetes", "topics": topics})
    assert ("backbone:topics[0].replication_factor: topic 'ingest.events' asks for 3 replicas "
            "but sizes.kafka_brokers is 1") in error
    assert build_spec({"platform": "kubernetes", "sizes": HA, "topics": topics}, "s").topics[0].replication_factor == 3


def test_min_insync_replicas_fits_the_replication_factor():
    topics = [{"name": "ingest.events", "replication_factor": 1, "config": {"min.insync.replicas": "2"}}]
    assert 'backbone:topics[0].config["min.insync.replicas"]: 2 exceeds' in problems({"topics": topics})
    topics[0]["config"]["min.insync.replicas"] = "all"
    assert "must be a positive integer" in problems({"topics": topics})


def test_topics_are_unique():
    assert "topic 'a.b' is declared twice" in problems({"topics": [{"name": "a.b"}, {"name": "a.b"}]})


@pytest.mark.parametrize("sizes, key", [
    ({"redis_replicas": 2, "redis_sentinels": 0}, "sizes.redis_sentinels"),
    ({"redis_replicas": 2, "redis_sentinels": 2}, "sizes.redis_sentinels"),
    ({"redis_replicas": 2, "redis_sentinels": 1}, "sizes.redis_sentinels"),
    ({"redis_replicas": 0, "redis_sentinels": 3}, "sizes.redis_replicas"),
    ({"kafka_brokers": 2}, "sizes.kafka_brokers"),
])
def test_ha_sizes_must_be_able_to_fail_over(sizes, key):
    assert f"backbone:{key}:" in problems({"platform": "kubernetes", "sizes": sizes})


def test_bootstrap_on_kubernetes_is_allowed():
    spec = build_spec({"tier": "bootstrap", "platform": "kubernetes"}, "k")
    assert spec.platform == "kubernetes" and not spec.declares_services


def test_quantities():
    assert (cpu_millis("250m"), cpu_millis("2"), cpu_millis("1.5")) == (250, 2000, 1500)
    assert (memory_bytes("512Mi"), memory_bytes("1G"), memory_bytes("64")) == (512 * 2**20, 10**9, 64)
    with pytest.raises(ValueError):
        cpu_millis("two")


# --- Pulumi.yaml and the stack files ---------------------------------------------------------

def test_project_file_declares_every_key_with_description_and_default():
    config = project_config()
    assert set(config) == set(SCALAR_KEYS) | set(STRUCTURED_KEYS) | set(GENERATED_KEYS)
    for key, declaration in config.items():
        assert declaration.get("description"), f"{key} has no description"
        # Pulumi's project schema knows only these types; objects stay untyped.
        assert declaration.get("type") in (None, "string", "integer", "boolean", "array"), key
        if key in ENCRYPTED_KEYS:
            # the CLI refuses a secret key with a (plain-text) default; without one it is required
            assert declaration == {**declaration, "type": "string", "secret": True} and "default" not in declaration
        elif key in GENERATED_KEYS:  # certificates: public, required (no default)
            assert declaration.get("type") == "string" and not declaration.get("secret") and "default" not in declaration
        else:
            assert "default" in declaration, f"{key} has no default"
    for key in SCALAR_KEYS:
        assert config[key]["type"] == ("boolean" if key == "await_readiness" else "string")


def test_project_file_runs_the_infra_program_in_the_venv():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "backbone" and project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_project_defaults_equal_the_spec_defaults():
    defaults = {key: declaration["default"] for key, declaration in project_config().items()
                if key not in GENERATED_KEYS}
    assert build_spec(defaults, "x").model_dump(mode="json") == StackSpec().model_dump(mode="json")


def test_project_defaults_pin_every_image():
    for ref in project_config()["images"]["default"].values():
        assert ":" in ref and not ref.endswith(":latest")


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_stack_files_are_valid_specs(stack):
    spec = build_spec(stack_file_config(stack), stack)
    assert spec.tier == "institutional"
    assert spec.platform == {"dev": "docker", "staging": "kubernetes"}[stack]


def test_staging_is_sized_for_ha():
    spec = build_spec(stack_file_config("staging"), "staging")
    assert spec.sizes.kafka_brokers == 3
    assert (spec.sizes.redis_replicas, spec.sizes.redis_sentinels, spec.sizes.timescale_replicas) == (2, 3, 1)
    assert {(t.replication_factor, t.config["min.insync.replicas"]) for t in spec.topics} == {(3, "2")}
    assert spec.placement.quorum_anti_affinity == "required"
