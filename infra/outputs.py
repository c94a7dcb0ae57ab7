"""The outputs contract a stack exports, computed from the spec alone.

`contract_halves` builds the whole document with a placeholder password, validates it with
`backbone.contract.Contract` (so a bad shape fails before any resource is declared) and
splits it into the redaction-safe `backbone` output and the shape of `backbone_secrets`;
`secrets_output` fills that shape with the real password Outputs as one Pulumi secret.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import ValidationError

from backbone.contract import CONTRACT_VERSION, Contract, split_secrets

from infra import topology as t
from infra.spec import SpecError, StackSpec

# Stands in for each password while the document's shape is validated; it must never
# reach an output (tests assert so).
PASSWORD_PLACEHOLDER = "placeholder-password-0000"
PASSWORD_SECTIONS = ("timescale", "redis")


def contract_document(spec: StackSpec, passwords: Mapping[str, str]) -> dict[str, Any]:
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
        "database": t.DATABASE, "user": t.DATABASE_USER, "password": passwords["timescale"],
        "sslmode": "prefer", "require_timescaledb": True,
        "pool": spec.pool.model_dump(mode="json"),
    }
    document["redis"] = {
        **endpoints["redis"],
        "password": passwords["redis"], "master_name": t.REDIS_MASTER_NAME,
        "cache_policy": spec.cache_policy.model_dump(mode="json"),
        # what every Redis node's redis.conf enforces (infra/service_settings.py), for the drills
        "min_replicas_to_write": spec.redis.min_replicas_to_write,
        "min_replicas_max_lag_s": spec.redis.min_replicas_max_lag_s,
    }
    document["kafka"] = {
        **endpoints["kafka"],
        "security_protocol": "PLAINTEXT",
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


def contract_halves(spec: StackSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public output, secrets shape) of a validated contract document."""
    document = contract_document(spec, {s: PASSWORD_PLACEHOLDER for s in PASSWORD_SECTIONS})
    try:
        Contract.model_validate(document)
    except ValidationError as err:
        raise SpecError([("(contract) " + ".".join(str(p) for p in e["loc"]), e["msg"])
                         for e in err.errors()]) from None
    return split_secrets(document)


def secrets_output(shape: Mapping[str, Mapping[str, Any]],
                   passwords: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[dict[str, Any]]:
    """`backbone_secrets`: the shape's placeholders replaced by the real passwords."""
    filled: dict[str, dict[str, Any]] = {}
    for section, fields in shape.items():
        for field in fields:
            if field != "password":  # the stacks set no URL or SASL secret; a new one needs wiring here
                raise ValueError(f"no value for secret field {section}.{field}")
            filled.setdefault(section, {})[field] = passwords[section]
    return pulumi.Output.secret(filled)
