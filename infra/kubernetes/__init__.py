"""The kubernetes platform: the namespace, then one component per service inside it."""
from __future__ import annotations

import pulumi

from infra.kubernetes.common import skip_await
from infra.kubernetes.kafka import Kafka
from infra.kubernetes.namespace import Namespace
from infra.kubernetes.redis import Redis
from infra.kubernetes.timescale import Timescale
from infra.spec import StackSpec

__all__ = ["declare", "Kafka", "Namespace", "Redis", "Timescale"]


def declare(spec: StackSpec) -> dict[str, pulumi.Output[str]]:
    """Declare the services; returns their passwords by contract section."""
    # Children inherit their component's transformations: with await_readiness off, every
    # object the stack declares carries the provider's skip-await annotation.
    opts = None if spec.await_readiness else pulumi.ResourceOptions(transformations=[skip_await])
    namespace = Namespace("namespace", spec.namespace, opts=opts)
    timescale = Timescale("timescale", spec, namespace.name, opts=opts)
    redis = Redis("redis", spec, namespace.name, opts=opts)
    Kafka("kafka", spec, namespace.name, opts=opts)
    return {"timescale": timescale.password, "redis": redis.password}
