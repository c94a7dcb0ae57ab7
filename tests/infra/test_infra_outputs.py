"""The exported outputs are the contract: `backbone` + `backbone_secrets` merge into a valid
`backbone.contract.Contract` that points at what the stack declared."""
from __future__ import annotations

import json

import pytest

from backbone.contract import SECRET_FIELDS, Contract, merge_outputs
from infra.outputs import PASSWORD_PLACEHOLDER, contract_halves
from infra.spec import build_spec
from stack_harness import mock_contract_secrets, mock_password, mock_tls, plain, stack_file_config

pytestmark = pytest.mark.timeout(60)


def contract_of(run) -> Contract:
    outputs = json.loads(json.dumps(run.outputs))  # what `pulumi stack output --json` would print
    return Contract.model_validate(merge_outputs(outputs))


def test_dev_contract_points_at_the_published_ports(dev_run):
    contract = contract_of(dev_run)
    assert (contract.environment, contract.tier, contract.platform) == ("dev", "institutional", "docker")
    assert (contract.timescale.host, contract.timescale.port, contract.timescale.ha) == ("127.0.0.1", 5432, "none")
    assert contract.timescale.require_timescaledb is True
    assert contract.timescale.password.get_secret_value() == mock_password("timescale-password")
    assert (contract.redis.mode, contract.redis.host, contract.redis.port) == ("standalone", "127.0.0.1", 6379)
    assert contract.redis.password.get_secret_value() == mock_password("redis-password")
    assert (contract.kafka.bootstrap_servers, contract.kafka.expected_brokers) == ("127.0.0.1:9092", 1)
    assert [t.name for t in contract.kafka.topics] == ["ingest.events", "ingest.metrics", "ingest.deadletter"]
    # the default store: an institutional contract names the store it came from too
    assert contract.bootstrap.store == ".backbone/bootstrap/backbone.db"


def test_staging_contract_points_at_the_client_services(staging_run):
    contract = contract_of(staging_run)
    ns = "backbone-staging.svc.cluster.local"
    assert contract.platform == "kubernetes"
    assert (contract.timescale.host, contract.timescale.ha) == (f"timescale.{ns}", "patroni")
    assert [str(r) for r in contract.timescale.replicas] == [f"timescale-replica.{ns}:5432"]
    assert (contract.redis.mode, contract.redis.host) == ("sentinel", f"redis.{ns}")
    assert [str(s) for s in contract.redis.sentinels] == [
        f"redis-sentinel-{i}.redis-sentinel-headless.{ns}:26379" for i in range(3)]
    assert (contract.kafka.bootstrap_servers, contract.kafka.expected_brokers) == (f"kafka.{ns}:9092", 3)
    assert {t.config["min.insync.replicas"] for t in contract.kafka.topics} == {"2"}


def test_contract_objectives_cache_and_pool_come_from_config(staging_run):
    contract = contract_of(staging_run)
    assert (contract.objectives.timescale.rto_s, contract.objectives.timescale.rpo_s) == (900, 86400)
    assert (contract.objectives.kafka.rto_s, contract.objectives.kafka.rpo_s) == (600, 900)
    assert (contract.objectives.redis.rto_s, contract.objectives.redis.rpo_s) == (600, 3600)
    assert contract.redis.cache_policy.model_dump() == {"namespace": "emp:cache", "ttl_seconds": 900, "max_keys": 1024}
    assert contract.timescale.pool.size == 5


def test_bootstrap_contract_is_the_embedded_store(bootstrap_run):
    contract = contract_of(bootstrap_run)
    assert contract.tier == "bootstrap"
    assert contract.bootstrap.store == "/var/lib/backbone/store.db"
    assert contract.timescale is None and contract.redis is None and contract.kafka is None


def test_the_advertised_names_exist_in_the_cluster(staging_run):
    """Every contract address resolves to a declared Service (or a pod of a headless one)."""
    services = {plain(d.inputs)["metadata"]["name"] for d in staging_run.declared if d.inputs.get("kind") == "Service"}
    contract = contract_of(staging_run)
    hosts = [contract.timescale.host, contract.redis.host, contract.kafka.bootstrap_servers.split(":")[0]]
    hosts += [r.host for r in contract.timescale.replicas]
    for host in hosts:
        assert host.split(".")[0] in services, host
    for sentinel in contract.redis.sentinels:
        pod, service = sentinel.host.split(".")[:2]
        assert service in services and pod.rsplit("-", 1)[0] == "redis-sentinel"


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_secrets_and_public_halves_split_on_the_secret_fields(stack):
    config = stack_file_config(stack)
    ca = mock_tls(config["platform"], config["namespace"])["tls_ca_pem"]
    public, shape = contract_halves(build_spec(config, stack), ca)
    for section, fields in SECRET_FIELDS.items():
        assert not set(fields) & set(public.get(section, {})), section
    expected = mock_contract_secrets(sentinels=stack == "staging")
    placeholders = json.loads(json.dumps(expected), object_hook=lambda d: {
        k: PASSWORD_PLACEHOLDER if isinstance(v, str) else v for k, v in d.items()})
    assert shape == placeholders
    assert PASSWORD_PLACEHOLDER not in json.dumps(public)
