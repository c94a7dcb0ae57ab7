"""The outputs contract a stack exports, computed from the spec alone.

`contract_halves` builds the whole document with a placeholder password, validates it with
`backbone.contract.Contract` (so a bad shape fails before any resource is declared) and
splits it into the redaction-safe `backbone` output and the shape of `backbone_secrets`;
`secrets_output` fills that shape with the stack's secrets (its config, infra/generated.py) as
one Pulumi secret.

Every service section carries the stack's CA (`ca_pem`) and says how to verify it:
`sslmode: verify-full`, Redis `tls: true`, Kafka SASL_SSL with SCRAM-SHA-512; the accounts
by duty (`timescale.roles`, `kafka.principals`) and the Sentinels' password. The superuser,
the replication accounts and Redis' admin user are never in the contract.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi
from pydantic import ValidationError

from backbone.contract import CONTRACT_VERSION, Contract, split_secrets

from infra import security
from infra import topology as t
from infra.spec import SpecError, StackSpec

# Stands in for each password while the document's shape is validated; it must never
# reach an output (tests assert so).
PASSWORD_PLACEHOLDER = "placeholder-password-0000"
# Where each secret of the contract comes from: its path in the document -> the stack's
# generated config key (infra/generated.py).
SECRET_SOURCES = {
    "timescale.password": "timescale_password",
    **{f"timescale.roles.{duty}.password": key for duty, (_, key) in security.TIMESCALE_ROLES.items()},
    "redis.password": "redis_password",
    "redis.sentinel_password": "sentinel_password",
    "kafka.sasl_password": security.KAFKA_APP[1],
    **{f"kafka.principals.{duty}.password": key for duty, (_, key) in security.KAFKA_PRINCIPALS.items()},
}


def contract_document(spec: StackSpec, passwords: Mapping[str, str], ca_pem: str) -> dict[str, Any]:
    """`passwords`: by SECRET_SOURCES path."""
    document: dict[str, Any] = {
        "contract_version": CONTRACT_VERSION,
        "environment": spec.stack,
        "tier": spec.tier,
        "platform": spec.platform,
        "objectives": spec.objectives.model_dump(mode="json"),
        "data": spec.data.model_dump(mode="json"),
        # Both tiers: after a switch to institutional it names the store the deployment
        # came from, so one contract describes both ends of the switch (docs/tiers.md).
        "bootstrap": {"store": spec.bootstrap_store},
    }
    if not spec.declares_services:
        return document
    endpoints = _docker_endpoints(spec) if spec.platform == "docker" else _kubernetes_endpoints(spec)
    document["timescale"] = {
        **endpoints["timescale"],
        "database": t.DATABASE, "user": security.APP, "password": passwords["timescale.password"],
        "sslmode": "verify-full", "ca_pem": ca_pem, "require_timescaledb": True,
        "roles": {duty: {"user": user, "password": passwords[f"timescale.roles.{duty}.password"]}
                  for duty, (user, _) in security.TIMESCALE_ROLES.items()},
        "pool": spec.pool.model_dump(mode="json"),
    }
    sentinel_auth = ({"sentinel_username": security.SENTINEL_CLIENT_USER,
                      "sentinel_password": passwords["redis.sentinel_password"]}
                     if spec.redis_mode == "sentinel" else {})
    document["redis"] = {
        **endpoints["redis"],
        "username": security.REDIS_APP, "password": passwords["redis.password"], "tls": True, "ca_pem": ca_pem,
        **sentinel_auth,
        "master_name": t.REDIS_MASTER_NAME,
        "cache_policy": spec.cache_policy.model_dump(mode="json"),
        # what every Redis node's redis.conf enforces (infra/service_settings.py), for the drills
        "min_replicas_to_write": spec.redis.min_replicas_to_write,
        "min_replicas_max_lag_s": spec.redis.min_replicas_max_lag_s,
    }
    document["kafka"] = {
        **endpoints["kafka"],
        "security_protocol": "SASL_SSL", "sasl_mechanism": security.SCRAM, "ca_pem": ca_pem,
        "sasl_username": security.KAFKA_APP[0], "sasl_password": passwords["kafka.sasl_password"],
        "principals": {duty: {"user": user, "password": passwords[f"kafka.principals.{duty}.password"]}
                       for duty, (user, _) in security.KAFKA_PRINCIPALS.items()},
        "topics": [topic.model_dump(mode="json") for topic in spec.topics],
    }
    return document


def _docker_endpoints(spec: StackSpec) -> dict[str, dict[str, Any]]:
    return {
        "timescale": {"host": "127.0.0.1", "port": spec.ports.timescale, "ha": "none", "replicas": []},
        "redis": {"mode": "standalone", "host": "127.0.0.1", "port": spec.ports.redis, "sentinels": []},
        "kafka": {"bootstrap_servers": f"127.0.0.1:{spec.ports.kafka}", "expected_brokers": 1},
    }


def _kubernetes_endpoints(spec: StackSpec) -> dict[str, dict[str, Any]]:
    ns = spec.namespace
    # Patroni labels whichever member leads `role=primary`; the replicas Service follows the
    # standbys, so both addresses stay right across a failover.
    replicas = ([{"host": t.service_host(t.TIMESCALE_REPLICAS_SERVICE, ns), "port": t.TIMESCALE_PORT}]
                if spec.sizes.timescale_replicas else [])
    sentinels = [{"host": t.pod_host(t.SENTINEL, i, ns), "port": t.SENTINEL_PORT}
                 for i in range(spec.sizes.redis_sentinels)]
    return {
        "timescale": {"host": t.service_host(t.TIMESCALE, ns), "port": t.TIMESCALE_PORT,
                      "ha": "patroni", "replicas": replicas},
        "redis": {"mode": spec.redis_mode, "host": t.service_host(t.REDIS, ns), "port": t.REDIS_PORT,
                  "sentinels": sentinels},
        "kafka": {"bootstrap_servers": f"{t.service_host(t.KAFKA, ns)}:{t.KAFKA_PORT}",
                  "expected_brokers": spec.sizes.kafka_brokers},
    }


def contract_halves(spec: StackSpec, ca_pem: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public output, secrets shape) of a validated contract document."""
    if spec.declares_services and not ca_pem:
        raise SpecError([("tls_ca_pem", f"missing: issue the stack's certificates with `python -m infra.deploy "
                                        f"secrets --stack {spec.stack}`")])
    document = contract_document(spec, {path: PASSWORD_PLACEHOLDER for path in SECRET_SOURCES}, ca_pem or "")
    try:
        Contract.model_validate(document)
    except ValidationError as err:
        raise SpecError([("(contract) " + ".".join(str(p) for p in e["loc"]), e["msg"])
                         for e in err.errors()]) from None
    return split_secrets(document)


def secrets_output(shape: Mapping[str, Any], secret: Callable[[str], pulumi.Output[str]]) -> pulumi.Output[dict]:
    """`backbone_secrets`: each placeholder of the shape replaced by the stack's secret
    (`secret(generated key)`), as one Pulumi secret."""
    def fill(node: Any, path: str) -> Any:
        if isinstance(node, Mapping):
            return {k: fill(v, f"{path}.{k}" if path else k) for k, v in node.items()}
        if path not in SECRET_SOURCES:  # a new secret field needs its source here
            raise ValueError(f"no value for secret field {path}")
        return secret(SECRET_SOURCES[path])
    return pulumi.Output.secret(pulumi.Output.from_input(fill(shape, "")))
