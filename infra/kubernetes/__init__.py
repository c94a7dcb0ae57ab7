"""The kubernetes platform: the namespace, then one component per service inside it."""
from __future__ import annotations

import pulumi

from infra.kubernetes.kafka import Kafka
from infra.kubernetes.namespace import Namespace
from infra.kubernetes.redis import Redis
from infra.kubernetes.timescale import Timescale
from infra.spec import StackSpec

__all__ = ["declare", "Kafka", "Namespace", "Redis", "Timescale"]


def declare(spec: StackSpec) -> dict[str, pulumi.Output[str]]:
    """Declare the services; returns their passwords by contract section."""
    namespace = Namespace("namespace", spec.namespace)
    timescale = Timescale("timescale", spec, namespace.name)
    redis = Redis("redis", spec, namespace.name)
    Kafka("kafka", spec, namespace.name)
    return {"timescale": timescale.password, "redis": redis.password}
