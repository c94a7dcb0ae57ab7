"""StackSpec -> the settings objects of `backbone.serviceconfig`, for both platforms.

Only the numbers that depend on the stack are chosen here; the configuration files and
variables themselves come from the generators.
"""
from __future__ import annotations

from backbone.serviceconfig import (
    KafkaClusterSettings,
    PatroniSettings,
    PostgresSettings,
    RedisSettings,
    SentinelSettings,
)

from infra import topology as t
from infra.spec import StackSpec, memory_bytes


def postgres(spec: StackSpec) -> PostgresSettings:
    # A quarter of the memory limit for shared_buffers: PostgreSQL's usual starting point.
    shared_buffers_mb = max(32, memory_bytes(spec.sizes.resources.timescale.limits.memory) // 2**20 // 4)
    return PostgresSettings(port=t.TIMESCALE_PORT, shared_buffers=f"{shared_buffers_mb}MB")


def patroni(spec: StackSpec) -> PatroniSettings:
    detection = spec.failure_detection.patroni
    return PatroniSettings(scope=f"{spec.namespace}-timescale", ttl=detection.ttl, loop_wait=detection.loop_wait,
                           retry_timeout=detection.retry_timeout, synchronous_mode=detection.synchronous_mode)


def redis(spec: StackSpec, data_dir: str) -> RedisSettings:
    # maxmemory at three quarters of the limit leaves room for the fork of an AOF rewrite.
    maxmemory_mb = max(16, memory_bytes(spec.sizes.resources.redis.limits.memory) * 3 // 4 // 2**20)
    # Inside a container redis binds every interface; docker publishes it on 127.0.0.1 only,
    # and on kubernetes a NetworkPolicy decides who reaches it.
    # min-replicas-*: a master cut off from its replicas stops acknowledging writes it would
    # lose on failover (spec.RedisServer); replicas ignore them until promoted.
    return RedisSettings(port=t.REDIS_PORT, bind="0.0.0.0", data_dir=data_dir, maxmemory=f"{maxmemory_mb}mb",
                         min_replicas_to_write=spec.redis.min_replicas_to_write,
                         min_replicas_max_lag_s=spec.redis.min_replicas_max_lag_s)


def sentinel(spec: StackSpec) -> SentinelSettings:
    detection = spec.failure_detection.sentinel
    return SentinelSettings(
        port=t.SENTINEL_PORT, bind="0.0.0.0", master_name=t.REDIS_MASTER_NAME,
        # Pod 0 is the first primary; once running, the sentinels track the real one.
        master_host=t.pod_host(t.REDIS, 0, spec.namespace), master_port=t.REDIS_PORT,
        quorum=spec.sizes.redis_sentinels // 2 + 1,
        down_after_ms=detection.down_after_ms, failover_timeout_ms=detection.failover_timeout_ms,
    )


def kafka_cluster(spec: StackSpec) -> KafkaClusterSettings:
    brokers = spec.sizes.kafka_brokers
    detection = spec.failure_detection.kafka
    return KafkaClusterSettings(
        default_replication_factor=min(3, brokers),
        # One broker may be down while acks=all writes still succeed.
        min_insync_replicas=max(1, min(2, brokers - 1)),
        broker_session_timeout_ms=detection.broker_session_timeout_ms,
        broker_heartbeat_interval_ms=detection.broker_heartbeat_interval_ms,
    )
