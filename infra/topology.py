"""Names and ports that the components and the exported contract must agree on.

The outputs are computed from the spec before any resource exists, so the DNS names and
container names the components create and the addresses the contract advertises come from
these functions and nowhere else.
"""
from __future__ import annotations

from backbone.serviceconfig import KafkaNode

from infra.spec import StackSpec

DATABASE = "backbone"
DATABASE_USER = "backbone"
REDIS_MASTER_NAME = "backbone"

TIMESCALE_PORT = 5432
PATRONI_API_PORT = 8008
REDIS_PORT = 6379
SENTINEL_PORT = 26379
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093

# Kubernetes object names (StatefulSets and their Services).
TIMESCALE = "timescale"
TIMESCALE_REPLICAS_SERVICE = "timescale-replica"
REDIS = "redis"
SENTINEL = "redis-sentinel"
KAFKA = "kafka"


def headless(statefulset: str) -> str:
    """The governing Service of a StatefulSet: it gives each pod a stable DNS name."""
    return f"{statefulset}-headless"


def service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def pod_host(statefulset: str, ordinal: int, namespace: str) -> str:
    return f"{statefulset}-{ordinal}.{headless(statefulset)}.{namespace}.svc.cluster.local"


def kafka_voters(spec: StackSpec) -> list[KafkaNode]:
    """Every Kubernetes broker is a combined broker+controller, hence a KRaft voter."""
    return [KafkaNode(node_id=i, host=pod_host(KAFKA, i, spec.namespace), port=KAFKA_PORT,
                      controller_port=KAFKA_CONTROLLER_PORT)
            for i in range(spec.sizes.kafka_brokers)]


def docker_name(spec: StackSpec, service: str) -> str:
    """Container, volume and network names on the docker platform."""
    return f"{spec.namespace}-{service}"


def docker_kafka_node(spec: StackSpec) -> KafkaNode:
    # Kafka tells clients to reconnect to its advertised address, so the container listens
    # on the published host port itself and advertises 127.0.0.1:<that port>.
    return KafkaNode(node_id=1, host="127.0.0.1", port=spec.ports.kafka, controller_port=KAFKA_CONTROLLER_PORT)
