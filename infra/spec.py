"""Stack config -> a validated `StackSpec`, before any resource is declared.

Plain Python (no pulumi import): `build_spec` takes the stack's config as a dict, so the
rules are tested without a Pulumi engine. Every problem is reported as
`backbone:<key>: <problem>`, with <key> in the path syntax of `pulumi config set --path`,
so the message says exactly what to change.

The defaults here equal the `default:` values in Pulumi.yaml (a test keeps them equal):
Pulumi replaces a structured key as a whole when a stack sets it, so a stack that sets only
`sizes.kafka_brokers` gets every other `sizes` field from these defaults.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from backbone.contract import CachePolicy, DataPolicy, Objectives, PoolSettings, TopicSpec
from backbone.serviceconfig import KAFKA_VERSION, POSTGRES_MAJOR, TIMESCALEDB_VERSION, timescale_images
from infra.spec_errors import SpecError, config_key, problem

# Keys whose value is an object or a list: Pulumi's project config schema types only
# string/integer/boolean/array-of-scalars, so these are declared untyped in Pulumi.yaml
# and validated here.
STRUCTURED_KEYS = ("images", "ports", "sizes", "topics", "objectives", "cache_policy", "data", "pool",
                   "failure_detection", "placement", "redis")
SCALAR_KEYS = ("tier", "platform", "namespace", "storage_class", "bootstrap_store", "await_readiness")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$")
_MEMORY_UNITS = {None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                 "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def cpu_millis(quantity: str) -> int:
    match = _CPU.match(quantity)
    if not match:
        raise ValueError(f"{quantity!r} is not a CPU quantity (e.g. '250m', '1', '1.5')")
    number, milli = match.groups()
    return round(float(number) * (1 if milli else 1000))


def memory_bytes(quantity: str) -> int:
    match = _MEMORY.match(quantity)
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity (e.g. '512Mi', '2Gi')")
    number, unit = match.groups()
    return int(number) * _MEMORY_UNITS[unit]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# timescale/timescaledb tags: 2.28.3-pg15; timescale/timescaledb-ha tags: pg15.17-ts2.28.3(-all)
_TIMESCALE_TAGS = (re.compile(r"^(?P<ts>\d+\.\d+(?:\.\d+)?)-pg(?P<pg>\d+)"),
                   re.compile(r"^pg(?P<pg>\d+)(?:\.\d+)?-ts(?P<ts>\d+\.\d+(?:\.\d+)?)"))


class Images(_Strict):
    # the TimescaleDB version and PostgreSQL major CI boots on the local platform
    timescale: str = timescale_images()["timescale"]  # docker: one PostgreSQL + TimescaleDB
    timescale_ha: str = timescale_images()["timescale_ha"]  # kubernetes: ships Patroni
    redis: str = "redis:7.4.2"
    kafka: str = f"apache/kafka:{KAFKA_VERSION}"

    @field_validator("*")
    @classmethod
    def _pinned(cls, ref: str) -> str:
        if "@sha256:" in ref:
            return ref
        name, _, tag = ref.rpartition(":")
        if not name or "/" in tag or not tag:
            raise ValueError(f"{ref!r} has no tag: pin a version (e.g. 'redis:7.4.2')")
        if tag == "latest":
            raise ValueError(f"{ref!r} uses 'latest': pin a version so every deploy runs the same image")
        return ref

    @field_validator("timescale", "timescale_ha")
    @classmethod
    def _same_timescaledb_as_ci(cls, ref: str) -> str:
        """A tag that names another TimescaleDB version or PostgreSQL major would deploy
        something CI never booted (a digest pin cannot be read, and is trusted)."""
        found = None if "@sha256:" in ref else next(
            (m for m in map(lambda r: r.match(ref.rpartition(":")[2]), _TIMESCALE_TAGS) if m), None)
        if found and (found["ts"] != TIMESCALEDB_VERSION or int(found["pg"]) != POSTGRES_MAJOR):
            raise ValueError(f"{ref!r} is TimescaleDB {found['ts']} on PostgreSQL {found['pg']}, but the local "
                             f"platform CI boots runs TimescaleDB {TIMESCALEDB_VERSION} on PostgreSQL "
                             f"{POSTGRES_MAJOR}: change both together (backbone/serviceconfig.py)")
        return ref


class Ports(_Strict):
    """Host ports the docker platform publishes on 127.0.0.1."""

    timescale: int = Field(5432, ge=1024, le=65535)
    redis: int = Field(6379, ge=1024, le=65535)
    kafka: int = Field(9092, ge=1024, le=65535)


class Quantities(_Strict):
    cpu: str
    memory: str

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str) -> str:
        cpu_millis(v)
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        memory_bytes(v)
        return v


class Resources(_Strict):
    requests: Quantities
    limits: Quantities

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> "Resources":
        if cpu_millis(self.limits.cpu) < cpu_millis(self.requests.cpu):
            raise ValueError(f"limits.cpu {self.limits.cpu} is below requests.cpu {self.requests.cpu}")
        if memory_bytes(self.limits.memory) < memory_bytes(self.requests.memory):
            raise ValueError(f"limits.memory {self.limits.memory} is below requests.memory {self.requests.memory}")
        return self


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources(requests=Quantities(cpu=cpu, memory=memory),
                     limits=Quantities(cpu=cpu_limit, memory=memory_limit))


class ResourceSizes(_Strict):
    timescale: Resources = _resources("250m", "512Mi", "2", "2Gi")
    redis: Resources = _resources("100m", "256Mi", "1", "512Mi")
    sentinel: Resources = _resources("50m", "64Mi", "250m", "128Mi")
    kafka: Resources = _resources("250m", "1Gi", "2", "2Gi")


class Storage(_Strict):
    timescale: str = "10Gi"
    redis: str = "1Gi"
    kafka: str = "10Gi"

    @field_validator("*")
    @classmethod
    def _size(cls, v: str) -> str:
        if memory_bytes(v) < 2**20:
            raise ValueError(f"{v!r} is too small for a volume (at least 1Mi)")
        return v


class Sizes(_Strict):
    kafka_brokers: int = Field(1, ge=1, le=9)
    redis_replicas: int = Field(0, ge=0, le=5)
    redis_sentinels: int = Field(0, ge=0, le=7)
    timescale_replicas: int = Field(0, ge=0, le=5)
    storage: Storage = Storage()
    resources: ResourceSizes = ResourceSizes()


class PatroniDetection(_Strict):
    ttl: int = Field(20, ge=20)  # Patroni raises a lower ttl to 20 without saying so
    loop_wait: int = Field(2, ge=1)
    retry_timeout: int = Field(4, ge=3)  # Patroni's floor
    synchronous_mode: bool = True

    @model_validator(mode="after")
    def _ttl_outlasts_retries(self) -> "PatroniDetection":
        # Patroni's own rule: a leader must be able to retry twice within one ttl.
        if self.ttl < self.loop_wait + 2 * self.retry_timeout:
            raise ValueError(f"ttl ({self.ttl}) must be >= loop_wait + 2 * retry_timeout "
                             f"({self.loop_wait + 2 * self.retry_timeout})")
        return self


class SentinelDetection(_Strict):
    down_after_ms: int = Field(1000, ge=100)
    failover_timeout_ms: int = Field(10000, ge=1000)

    @model_validator(mode="after")
    def _failover_outlasts_detection(self) -> "SentinelDetection":
        if self.failover_timeout_ms <= self.down_after_ms:
            raise ValueError("failover_timeout_ms must be longer than down_after_ms")
        return self


class KafkaDetection(_Strict):
    broker_session_timeout_ms: int = Field(9000, ge=1000)
    broker_heartbeat_interval_ms: int = Field(2000, ge=100)

    @model_validator(mode="after")
    def _heartbeats_fit_in_session(self) -> "KafkaDetection":
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms:
            raise ValueError("broker_heartbeat_interval_ms must be shorter than broker_session_timeout_ms")
        return self


class FailureDetection(_Strict):
    patroni: PatroniDetection = PatroniDetection()
    sentinel: SentinelDetection = SentinelDetection()
    kafka: KafkaDetection = KafkaDetection()


# `required`: a member stays Pending rather than share a node with another member;
# `preferred`: members share a node only when the cluster has too few.
AntiAffinity = Literal["required", "preferred"]


class Placement(_Strict):
    """How the kubernetes platform places the members of each quorum (Kafka voters, Patroni
    members, Sentinels). `required` needs at least as many schedulable nodes as the largest
    quorum; `preferred` suits a cluster with fewer, at the price of a node loss possibly
    taking a majority with it."""

    quorum_anti_affinity: AntiAffinity = "required"


class RedisServer(_Strict):
    """Redis server settings the stack writes into every Redis node's redis.conf and exports
    in the contract's `redis` section (the drills read what the deployment enforces).

    A master stops accepting writes while fewer than `min_replicas_to_write` replicas have
    acknowledged replication within `min_replicas_max_lag_s` seconds: replication is
    asynchronous, so this bounds the writes a master cut off from its replicas and Sentinels
    acknowledges and then loses when the others fail over. 0 means no bound. The bounds are
    the contract's (`backbone.contract.RedisEndpoint`)."""

    min_replicas_to_write: int = Field(0, ge=0, le=16)
    min_replicas_max_lag_s: int = Field(10, ge=1, le=3600)


def default_topics() -> list[TopicSpec]:
    week, three_days, two_weeks = "604800000", "259200000", "1209600000"
    return [
        TopicSpec(name="ingest.events", partitions=6, replication_factor=1,
                  config={"min.insync.replicas": "1", "retention.ms": week}),
        TopicSpec(name="ingest.metrics", partitions=6, replication_factor=1,
                  config={"min.insync.replicas": "1", "retention.ms": three_days}),
        TopicSpec(name="ingest.deadletter", partitions=1, replication_factor=1,
                  config={"min.insync.replicas": "1", "retention.ms": two_weeks}),
    ]


class StackSpec(_Strict):
    tier: Literal["bootstrap", "institutional"] = "bootstrap"
    platform: Literal["docker", "kubernetes"] = "docker"
    namespace: str = "backbone"
    storage_class: str = ""
    bootstrap_store: str = Field(".backbone/bootstrap/backbone.db", min_length=1)
    # kubernetes: false only on an API-only cluster (no scheduler or kubelet, as in CI), where
    # no pod ever runs and waiting for rollouts could only time out (docs/stacks.md)
    await_readiness: bool = True
    images: Images = Images()
    ports: Ports = Ports()
    sizes: Sizes = Sizes()
    topics: list[TopicSpec] = Field(default_factory=default_topics)
    objectives: Objectives = Field(default_factory=Objectives)
    cache_policy: CachePolicy = Field(default_factory=CachePolicy)
    data: DataPolicy = Field(default_factory=DataPolicy)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    failure_detection: FailureDetection = FailureDetection()
    placement: Placement = Placement()
    redis: RedisServer = RedisServer()

    _stack: str = PrivateAttr("")

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not _DNS_LABEL.match(v):
            raise ValueError(f"{v!r} is not a DNS label (lowercase letters, digits, '-'; at most 63)")
        return v

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, v: str) -> str:
        if v and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", v):
            raise ValueError(f"{v!r} is not a StorageClass name")
        return v

    @property
    def stack(self) -> str:
        return self._stack

    @property
    def declares_services(self) -> bool:
        return self.tier == "institutional"

    @property
    def redis_mode(self) -> Literal["standalone", "sentinel"]:
        return "sentinel" if self.sizes.redis_sentinels > 0 else "standalone"


def build_spec(values: Mapping[str, Any], stack: str) -> StackSpec:
    """Validate a stack's config (keys without the `backbone:` prefix)."""
    if not stack:
        raise SpecError([("stack", "the stack name is empty")])
    try:
        spec = StackSpec.model_validate(dict(values))
    except ValidationError as err:
        raise SpecError([(config_key(e["loc"]), problem(e)) for e in err.errors()]) from None
    problems = list(_cross_checks(spec))
    if problems:
        raise SpecError(problems)
    spec._stack = stack
    return spec


def _cross_checks(spec: StackSpec) -> Iterator[tuple[str, str]]:
    sizes = spec.sizes
    if spec.platform == "docker":
        single = {"kafka_brokers": 1, "redis_replicas": 0, "redis_sentinels": 0, "timescale_replicas": 0}
        for key, allowed in single.items():
            if getattr(sizes, key) != allowed:
                yield (f"sizes.{key}", f"must be {allowed} on platform docker (one container per "
                                       "service); HA sizes need platform kubernetes")
    if sizes.kafka_brokers > 1 and sizes.kafka_brokers % 2 == 0:
        yield ("sizes.kafka_brokers", "every broker is also a KRaft voter: use an odd count (1, 3, 5...) "
                                      "so a majority survives a loss")
    if sizes.redis_sentinels and (sizes.redis_sentinels < 3 or sizes.redis_sentinels % 2 == 0):
        yield ("sizes.redis_sentinels", "must be an odd number >= 3 so a majority can agree on a failover")
    if sizes.redis_replicas and not sizes.redis_sentinels:
        yield ("sizes.redis_sentinels", "replicas without sentinels never fail over: use 3 or more")
    if sizes.redis_sentinels and not sizes.redis_replicas:
        yield ("sizes.redis_replicas", "sentinels need at least one replica to promote")
    min_replicas = spec.redis.min_replicas_to_write
    if min_replicas > sizes.redis_replicas:
        yield ("redis.min_replicas_to_write",
               f"{min_replicas} exceeds sizes.redis_replicas ({sizes.redis_replicas}): the master would refuse "
               "every write" + (" (this stack runs a single Redis: use 0)" if not sizes.redis_replicas else ""))
    ports = spec.ports.model_dump()
    if len(set(ports.values())) < len(ports):
        yield ("ports", f"services need distinct host ports, got {ports}")
    names = [t.name for t in spec.topics]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        yield ("topics", f"topic {dupe!r} is declared twice")
    for i, topic in enumerate(spec.topics):
        if topic.replication_factor > sizes.kafka_brokers:
            yield (f"topics[{i}].replication_factor",
                   f"topic {topic.name!r} asks for {topic.replication_factor} replicas but "
                   f"sizes.kafka_brokers is {sizes.kafka_brokers}")
        isr = topic.config.get("min.insync.replicas")
        key = f'topics[{i}].config["min.insync.replicas"]'
        if isr is not None and (not isr.isdigit() or int(isr) < 1):
            yield (key, f"must be a positive integer, got {isr!r}")
        elif isr is not None and int(isr) > topic.replication_factor:
            yield (key, f"{isr} exceeds the replication_factor ({topic.replication_factor}) of topic "
                        f"{topic.name!r}: producers with acks=all could never write")
