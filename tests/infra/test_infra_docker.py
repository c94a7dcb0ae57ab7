"""The dev stack on the docker platform, as declared to the mocked engine."""
from __future__ import annotations

import json

import pytest

from backbone.serviceconfig import redis_conf
from infra import service_settings
from infra.spec import build_spec
from stack_harness import MOCK_SECRETS, mock_contract_secrets, plain, stack_file_config

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
    assert "redis-cli" in checks["redis"] and "--tls" in checks["redis"] and "--user admin" in checks["redis"]
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


def uploads(run, name: str) -> dict[str, dict]:
    return {u["file"]: u for u in containers(run)[name]["uploads"]}


def test_redis_takes_its_settings_from_the_generator(dev_run):
    inputs = containers(dev_run)["redis"]
    assert inputs["user"] == "999" and inputs["command"] == ["redis-server", "/usr/local/etc/redis.conf"]
    spec = build_spec(stack_file_config("dev"), "dev")
    conf = uploads(dev_run, "redis")["/usr/local/etc/redis.conf"]["content"]
    generated = redis_conf(service_settings.redis(spec, "/data"))
    assert all(line in conf.splitlines() for line in generated.splitlines() if not line.startswith("port "))
    assert "requirepass" not in conf and "mock-secret" not in conf


def test_timescale_takes_its_settings_from_the_generator(dev_run):
    inputs = containers(dev_run)["timescale"]
    flags = dict(arg.split("=", 1) for arg in inputs["command"][2::2])
    assert inputs["command"][0] == "postgres"
    assert flags["shared_preload_libraries"] == "timescaledb,pg_stat_statements"
    assert flags["shared_buffers"] == "512MB"  # a quarter of the 2Gi limit
    assert inputs["memory"] == 2048 and inputs["cpus"] == "2"


def test_kafka_runs_kraft_from_the_generator(dev_run):
    text = uploads(dev_run, "kafka")["/opt/kafka/config/backbone-server.properties"]["content"]
    props = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:9092,INTERNAL://localhost:9094"
    assert props["broker.session.timeout.ms"] == "9000"
    cluster_id = uploads(dev_run, "kafka")["/opt/kafka/config/backbone-cluster-id"]
    assert len(cluster_id["content"]) == 22 and cluster_id["permissions"] == "0400"


def test_passwords_are_secret_outputs_and_absent_from_the_public_one(dev_run):
    assert "backbone_secrets" in dev_run.secret_outputs
    assert "backbone" not in dev_run.secret_outputs
    assert dev_run.outputs["backbone_secrets"] == mock_contract_secrets(sentinels=False)
    public = json.dumps(dev_run.outputs["backbone"])
    for password in [*MOCK_SECRETS.values(), "placeholder-password"]:
        assert password not in public
    assert "password" not in public


def test_containers_share_the_stack_network(dev_run):
    network = plain(dev_run.named("docker:index/network:Network", "network").inputs)
    assert network["name"] == "backbone-dev-net"
    for container in containers(dev_run).values():
        assert container["networksAdvanced"][0]["name"] == "backbone-dev-net"
