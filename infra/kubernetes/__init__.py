"""The kubernetes platform: the namespace, then one component per service inside it."""
from __future__ import annotations

import pulumi

from infra.kubernetes.common import api_only_waits
from infra.kubernetes.kafka import Kafka
from infra.kubernetes.namespace import Namespace
from infra.kubernetes.redis import Redis
from infra.kubernetes.timescale import Timescale
from infra.spec import StackSpec

__all__ = ["declare", "Kafka", "Namespace", "Redis", "Timescale"]


def declare(spec: StackSpec) -> None:
    """Declare the services."""
    # Children inherit their component's transformations: with await_readiness off, the
    # StatefulSets and Services wait for what an API-only cluster can do (common.API_ONLY_WAITS).
    opts = None if spec.await_readiness else pulumi.ResourceOptions(transformations=[api_only_waits])
    namespace = Namespace("namespace", spec.namespace, opts=opts)
    Timescale("timescale", spec, namespace.name, opts=opts)
    Redis("redis", spec, namespace.name, opts=opts)
    Kafka("kafka", spec, namespace.name, opts=opts)
