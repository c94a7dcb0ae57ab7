"""Kafka probe: cluster metadata, broker count against the declared one, controller."""
from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from ..checks import DEGRADED, DOWN, OK, CheckResult
from ..contract import KafkaEndpoint

QUIET_LOGGER = logging.getLogger("backbone.librdkafka")
QUIET_LOGGER.addHandler(logging.NullHandler())
QUIET_LOGGER.propagate = False


def kafka_client_config(ep: KafkaEndpoint, timeout_s: float) -> dict:
    """librdkafka settings shared by every client backbone makes."""
    conf = {
        "bootstrap.servers": ep.bootstrap_servers,
        "security.protocol": ep.security_protocol,
        "socket.timeout.ms": max(10, int(timeout_s * 1000)),
        "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
        "reconnect.backoff.max.ms": 500,
        "logger": QUIET_LOGGER,  # librdkafka would otherwise print connection errors to stderr
    }
    if ep.sasl_mechanism:
        conf["sasl.mechanism"] = ep.sasl_mechanism
    if ep.sasl_username:
        conf["sasl.username"] = ep.sasl_username
    if ep.sasl_password:
        conf["sasl.password"] = ep.sasl_password.get_secret_value()
    return conf


def probe_kafka(ep: KafkaEndpoint, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    admin = AdminClient(kafka_client_config(ep, timeout_s))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
        metadata_ms = (time.perf_counter() - started) * 1000
        remaining = max(0.5, timeout_s - metadata_ms / 1000)
        cluster = admin.describe_cluster(request_timeout=remaining).result(timeout=remaining)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        text = err.str() if hasattr(err, "str") else str(err)
        code = "timeout" if "timed out" in text.lower() else "unreachable"
        return CheckResult("kafka", DOWN, code,
                           f"Kafka at {ep.bootstrap_servers} is down: no cluster metadata ({text}).",
                           latency_ms=(time.perf_counter() - started) * 1000, error=text)
    brokers = sorted(metadata.brokers)
    details = {"brokers": brokers, "expected_brokers": ep.expected_brokers,
               "controller": cluster.controller.id if cluster.controller else None,
               "cluster_id": cluster.cluster_id, "topics": len(metadata.topics)}
    if len(brokers) < ep.expected_brokers:
        return CheckResult("kafka", DEGRADED, "brokers_missing",
                           f"Kafka answers, but {len(brokers)} of {ep.expected_brokers} declared brokers are up.",
                           latency_ms=metadata_ms, details=details)
    return CheckResult("kafka", OK, "ok",
                       f"Kafka cluster answers with {len(brokers)} broker(s), controller {details['controller']}.",
                       latency_ms=metadata_ms, details=details)
