"""Kafka probe: metadata, brokers against the declared count (naming the missing ones),
controller, under-replicated and offline partitions, declared topics present, and a
produce -> consume canary on its own topic with end-to-end latency."""
from __future__ import annotations

import time
import uuid

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ..checks import DEGRADED, DOWN, CheckResult, judged
from ..clients import kafka as kafka_client
from ..clients.kafka import ensure_topic, kafka_text
from ..contract import KafkaEndpoint

CANARY_TOPIC = "backbone.canary"


def probe_kafka(ep: KafkaEndpoint, timeout_s: float, canary: bool = True) -> CheckResult:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    admin = kafka_client.admin(ep, timeout_s)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
        metadata_ms = (time.perf_counter() - started) * 1000
        remaining = max(0.5, deadline - time.monotonic())
        cluster = admin.describe_cluster(request_timeout=remaining).result(timeout=remaining)
    except KafkaException as exc:
        text = kafka_text(exc)
        code = "timeout" if "timed out" in text.lower() else "unreachable"
        return CheckResult("kafka", DOWN, code,
                           f"Kafka at {ep.bootstrap_servers} is down: no cluster metadata ({text}).",
                           latency_ms=(time.perf_counter() - started) * 1000, error=text)
    details = describe(ep, metadata)
    details["controller"] = cluster.controller.id if cluster.controller else None
    details["cluster_id"] = cluster.cluster_id
    if canary:
        details["canary"] = run_canary(ep, admin, len(metadata.brokers), deadline)
    return judge(ep, details, metadata_ms)


def describe(ep: KafkaEndpoint, metadata) -> dict:
    live = sorted(metadata.brokers)
    urp, offline, assigned = [], [], set()
    for topic in metadata.topics.values():
        for p in topic.partitions.values():
            assigned.update(p.replicas)
            name = f"{topic.topic}-{p.id}"
            if p.leader < 0:
                offline.append(name)
            elif len(p.isrs) < len(p.replicas):
                urp.append(name)
    declared = [t.name for t in ep.topics]
    return {"brokers": live, "expected_brokers": ep.expected_brokers,
            # a broker that partitions are assigned to but that is not in the metadata is down
            "missing_brokers": sorted(assigned - set(live)),
            "under_replicated": sorted(urp), "offline_partitions": sorted(offline),
            "topics_missing": [t for t in declared if t not in metadata.topics], "topics": len(metadata.topics)}


def run_canary(ep: KafkaEndpoint, admin: AdminClient, brokers: int, deadline: float,
               value: bytes = b"canary") -> dict:
    """Produce one record (acks=all) to the canary topic and consume it back."""
    try:
        ensure_topic(admin, NewTopic(CANARY_TOPIC, 1, min(3, brokers)), max(0.5, deadline - time.monotonic()))
        client_s = max(0.5, deadline - time.monotonic())
        key = uuid.uuid4().hex.encode()
        delivered: dict = {}
        producer = kafka_client.producer(ep, client_s, {"acks": "all", "linger.ms": 0, "enable.idempotence": False,
                                    "message.timeout.ms": max(500, int((deadline - time.monotonic()) * 1000))})
        sent = time.perf_counter()
        producer.produce(CANARY_TOPIC, key=key, value=value,
                         on_delivery=lambda e, m: delivered.update(error=e, offset=m.offset() if not e else None))
        producer.flush(max(0.1, deadline - time.monotonic()))
        if delivered.get("error") or "offset" not in delivered:
            reason = delivered.get("error")
            return {"ok": False, "error": reason.str() if reason else "not acknowledged in time"}
        acked_ms = (time.perf_counter() - sent) * 1000
        consumer = kafka_client.consumer(ep, client_s, {"group.id": "backbone-canary", "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition(CANARY_TOPIC, 0, delivered["offset"])])
            while time.monotonic() < deadline:
                msg = consumer.poll(max(0.05, min(0.5, deadline - time.monotonic())))
                if msg is not None and not msg.error() and msg.key() == key:
                    if msg.value() != value:
                        return {"ok": False, "error": "the consumed record differs from the one produced"}
                    return {"ok": True, "produce_ack_ms": round(acked_ms, 2),
                            "end_to_end_ms": round((time.perf_counter() - sent) * 1000, 2)}
        finally:
            consumer.close()
        return {"ok": False, "error": "the acknowledged record was not consumed in time"}
    except KafkaException as exc:
        return {"ok": False, "error": kafka_text(exc)}


def judge(ep: KafkaEndpoint, d: dict, latency_ms: float) -> CheckResult:
    """Pure: the facts gathered -> ok / degraded / down, with the reasons."""
    problems: list[tuple[str, str]] = []
    live = len(d["brokers"])
    if live < ep.expected_brokers:
        named = f" (missing: broker {', '.join(map(str, d['missing_brokers']))})" if d["missing_brokers"] else ""
        problems.append(("brokers_missing", f"{live} of {ep.expected_brokers} declared brokers are up{named}"))
    if d["offline_partitions"]:
        problems.append(("offline_partitions", f"{len(d['offline_partitions'])} partition(s) offline: "
                         + ", ".join(d["offline_partitions"][:5])))
    if d["under_replicated"]:
        problems.append(("under_replicated", f"{len(d['under_replicated'])} under-replicated partition(s): "
                         + ", ".join(d["under_replicated"][:5]) + ("…" if len(d["under_replicated"]) > 5 else "")))
    if d["topics_missing"]:
        problems.append(("topics_missing", "declared topic(s) missing: " + ", ".join(d["topics_missing"])))
    canary = d.get("canary")
    if canary and not canary["ok"]:
        problems.append(("canary_failed", f"the produce -> consume canary failed ({canary['error']})"))
    summary = f"Kafka answers with {live} broker(s), controller {d['controller']}"
    if canary and canary["ok"]:
        summary += f", canary round trip {canary['end_to_end_ms']:.0f} ms"
    status = DOWN if canary and not canary["ok"] and d["offline_partitions"] else DEGRADED
    return judged("kafka", summary, problems, latency_ms, d, status)
