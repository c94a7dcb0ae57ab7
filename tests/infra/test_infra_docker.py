"""The dev stack on the docker platform, as declared to the mocked engine."""
from __future__ import annotations

import json

import pytest

from backbone.serviceconfig import redis_conf
from infra import service_settings
from infra.spec import build_spec
from stack_harness import is_secret, mock_password, plain, stack_file_config

pytestmark = pytest.mark.timeout(60)

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"


def containers(run) -> dict[str, dict]:
    return {d.name.removesuffix("-container"): plain(d.inputs) for d in run.of_type(CONTAINER)}


def test_components_have_typed_urns_and_parent_their_children(dev_run):
    components = {d.type for d in dev_run.declared if d.type.startswith("backbone:")}
    assert components == {"backbone:docker:Timescale", "backbone:docker:Redis", "backbone:docker:Kafka"}
    assert set(containers(dev_run)) == {"timescale", "redis", "kafka"}


def test_images_are_pinned(dev_run):
    spec = build_spec(stack_file_config("dev"), "dev")
    refs = sorted(plain(d.inputs)["name"] for d in dev_run.of_type(IMAGE))
    assert refs == sorted([spec.images.kafka, spec.images.redis, spec.images.timescale])
    for ref in refs:
        name, _, tag = ref.rpartition(":")
        assert name and tag and tag != "latest"
    for container in containers(dev_run).values():
        assert container["image"].startswith("sha256:"), "containers run the pulled image by id"


def test_every_container_has_a_healthcheck_and_restarts(dev_run):
    for name, container in containers(dev_run).items():
        check = container["healthcheck"]
        assert check["tests"][0] == "CMD-SHELL" and check["tests"][1], name
        assert check["retries"] >= 3, name
        assert container["restart"] == "unless-stopped", name
        assert container["wait"] is True, name
    checks = {name: c["healthcheck"]["tests"][1] for name, c in containers(dev_run).items()}
    assert checks["timescale"].startswith("pg_isready")
    assert "redis-cli" in checks["redis"] and '-a "$REDIS_PASSWORD"' in checks["redis"]
    assert "kafka-broker-api-versions.sh" in checks["kafka"]


def test_named_volumes_are_mounted(dev_run):
    volumes = {plain(d.inputs)["name"] for d in dev_run.of_type(VOLUME)}
    assert volumes == {"backbone-dev-timescale-data", "backbone-dev-redis-data", "backbone-dev-kafka-data"}
    mounted = {v["volumeName"]: v["containerPath"] for c in containers(dev_run).values() for v in c["volumes"]}
    assert mounted == {"backbone-dev-timescale-data": "/var/lib/postgresql/data",
                       "backbone-dev-redis-data": "/data",
                       "backbone-dev-kafka-data": "/var/lib/kafka/data"}


def test_ports_are_published_on_loopback_only(dev_run):
    published = {name: c["ports"] for name, c in containers(dev_run).items()}
    assert published == {
        "timescale": [{"internal": 5432, "external": 5432, "ip": "127.0.0.1", "protocol": "tcp"}],
        "redis": [{"internal": 6379, "external": 6379, "ip": "127.0.0.1", "protocol": "tcp"}],
        "kafka": [{"internal": 9092, "external": 9092, "ip": "127.0.0.1", "protocol": "tcp"}],
    }


def test_redis_requires_its_password(dev_run):
    redis = next(d for d in dev_run.of_type(CONTAINER) if d.name == "redis-container")
    assert is_secret(redis.inputs["envs"]), "the password env must be a secret input"
    inputs = plain(redis.inputs)
    assert inputs["envs"] == [f"REDIS_PASSWORD={mock_password('redis-password')}"]
    assert '--requirepass "$REDIS_PASSWORD"' in inputs["command"][-1]
    assert inputs["user"] == "999"
    spec = build_spec(stack_file_config("dev"), "dev")
    upload = inputs["uploads"][0]
    assert upload["content"] == redis_conf(service_settings.redis(spec, "/data"))
    assert "requirepass" not in upload["content"]


def test_timescale_takes_its_settings_from_the_generator(dev_run):
    timescale = next(d for d in dev_run.of_type(CONTAINER) if d.name == "timescale-container")
    assert is_secret(timescale.inputs["envs"])
    inputs = plain(timescale.inputs)
    flags = dict(arg.split("=", 1) for arg in inputs["command"][2::2])
    assert inputs["command"][0] == "postgres"
    assert flags["shared_preload_libraries"] == "timescaledb,pg_stat_statements"
    assert flags["shared_buffers"] == "512MB"  # a quarter of the 2Gi limit
    assert f"POSTGRES_PASSWORD={mock_password('timescale-password')}" in inputs["envs"]
    assert inputs["memory"] == 2048 and inputs["cpus"] == "2"


def test_kafka_runs_kraft_from_the_generator(dev_run):
    env = dict(e.split("=", 1) for e in containers(dev_run)["kafka"]["envs"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:9092"
    assert env["KAFKA_BROKER_SESSION_TIMEOUT_MS"] == "9000"
    assert len(env["CLUSTER_ID"]) == 22


def test_passwords_are_secret_outputs_and_absent_from_the_public_one(dev_run):
    assert "backbone_secrets" in dev_run.secret_outputs
    assert "backbone" not in dev_run.secret_outputs
    secrets = dev_run.outputs["backbone_secrets"]
    assert secrets == {"timescale": {"password": mock_password("timescale-password")},
                       "redis": {"password": mock_password("redis-password")}}
    public = json.dumps(dev_run.outputs["backbone"])
    for password in (mock_password("timescale-password"), mock_password("redis-password"), "placeholder-password"):
        assert password not in public
    assert "password" not in public


def test_containers_share_the_stack_network(dev_run):
    network = plain(dev_run.named("docker:index/network:Network", "network").inputs)
    assert network["name"] == "backbone-dev-net"
    for container in containers(dev_run).values():
        assert container["networksAdvanced"][0]["name"] == "backbone-dev-net"
