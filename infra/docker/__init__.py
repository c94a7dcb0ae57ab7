"""The docker platform: a bridge network and one component per service."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra import topology as t
from infra.docker.kafka import Kafka
from infra.docker.redis import Redis
from infra.docker.timescale import Timescale
from infra.spec import StackSpec

__all__ = ["declare", "Kafka", "Redis", "Timescale"]


def declare(spec: StackSpec) -> None:
    """Declare the services."""
    network = docker.Network("network", name=t.docker_name(spec, "net"), driver="bridge",
                             labels=[docker.NetworkLabelArgs(label="backbone.stack", value=spec.stack)])
    Timescale("timescale", spec, network)
    Redis("redis", spec, network)
    Kafka("kafka", spec, network)
