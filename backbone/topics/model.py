"""Kafka topics: declared specs + observed cluster state -> a plan. Pure: no I/O here.

`validate_declared` rejects what no cluster could accept (unknown config keys, RF above the
declared broker count) before anything is contacted; `plan_topics` diffs the declared topics
against what `topics_admin.observe` saw. Rendering lives in `topics_render`, the admin calls
in `topics_admin`.

Safety rules the plan encodes, so every caller gets them:
- partitions only grow: a declared decrease is refused and blocks the whole plan;
- the replication factor is reported, never changed (that needs a partition reassignment);
- undeclared topics are listed, deleted only with allow_delete, internal ones never.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Sequence

from ..contract import TopicSpec
from ..errors import ConfigError

# Every topic-level config a Kafka 4.1 broker reports in DescribeConfigs (read off a live
# 4.1.0 broker). A key outside this set is a typo or belongs to another Kafka version.
KNOWN_TOPIC_CONFIGS = frozenset({
    "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
    "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms", "min.insync.replicas", "preallocate", "remote.log.copy.disable",
    "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes", "retention.ms",
    "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
})
# Keys older guides still use; Kafka 4.0 removed them (KIP-724, KIP-937), 4.1 rejects them.
REMOVED_TOPIC_CONFIGS = {
    "message.downconversion.enable": "removed in Kafka 4.0 (KIP-724)",
    "message.format.version": "removed in Kafka 4.0 (KIP-724)",
    "message.timestamp.difference.max.ms":
        "removed in Kafka 4.0; use message.timestamp.before.max.ms / message.timestamp.after.max.ms",
}
# List-valued keys whose order carries no meaning ("compact,delete" == "delete,compact").
_UNORDERED_LISTS = frozenset({"cleanup.policy"})
REASSIGNMENT_HINT = ("changing the replication factor needs a partition reassignment "
                     "(kafka-reassign-partitions.sh); backbone does not do it for you")


class TopicConfigError(ConfigError):
    """Declared topics no cluster would accept; `problems` names each topic and key."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid topic declaration: " + "; ".join(problems))
        self.problems = problems


# backbone's own topics (the validate canary) are managed by backbone, never by a plan
BACKBONE_OWNED_PREFIX = "backbone."


def is_internal(name: str, marked: bool = False) -> bool:
    return marked or name.startswith("__") or name.startswith(BACKBONE_OWNED_PREFIX)


def validate_declared(specs: Sequence[TopicSpec], expected_brokers: int | None = None) -> None:
    """Reject, before the broker is contacted, what no apply could carry out."""
    problems: list[str] = []
    for spec in specs:
        where = f"kafka.topics[{spec.name}]"
        for key in spec.config:
            if key in REMOVED_TOPIC_CONFIGS:
                problems.append(f"{where}.config.{key}: {REMOVED_TOPIC_CONFIGS[key]}")
            elif key not in KNOWN_TOPIC_CONFIGS:
                near = difflib.get_close_matches(key, sorted(KNOWN_TOPIC_CONFIGS), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                problems.append(f"{where}.config.{key}: unknown topic config key{hint}")
        isr = spec.config.get("min.insync.replicas")
        if isr is not None:
            if not isr.strip().isdigit():
                problems.append(f"{where}.config.min.insync.replicas: expected an integer, got {isr!r}")
            elif int(isr) > spec.replication_factor:
                problems.append(f"{where}.config.min.insync.replicas: {isr} exceeds replication factor "
                                f"{spec.replication_factor}; acks=all writes could never succeed")
        if expected_brokers is not None and spec.replication_factor > expected_brokers:
            problems.append(f"{where}.replication_factor: {spec.replication_factor} exceeds "
                            f"kafka.expected_brokers {expected_brokers}")
    if problems:
        raise TopicConfigError(problems)


@dataclass(frozen=True)
class ObservedTopic:
    name: str
    partitions: int
    replication_factors: tuple[int, ...]  # distinct replica counts over the topic's partitions
    config: Mapping[str, str | None] = field(default_factory=dict)
    internal: bool = False  # as Kafka marks it; names starting "__" count as internal anyway

    @property
    def is_internal(self) -> bool:
        return is_internal(self.name, self.internal)


# --- actions -------------------------------------------------------------------------
# Each action knows whether it writes, whether `check` counts it as drift, and whether it
# blocks `apply` altogether.

@dataclass(frozen=True)
class Action:
    topic: str
    kind = "action"
    writes = False
    drift = False
    blocking = False

    def detail(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"topic": self.topic, "kind": self.kind, "writes": self.writes, "drift": self.drift, "blocking": self.blocking,
                "detail": self.detail(), **asdict(self)}


@dataclass(frozen=True)
class CreateTopic(Action):
    partitions: int = 1
    replication_factor: int = 1
    config: tuple[tuple[str, str], ...] = ()
    kind = "create"
    writes = drift = True

    def detail(self) -> str:
        conf = ", ".join(f"{k}={v}" for k, v in self.config)
        return (f"{self.partitions} partitions, replication factor {self.replication_factor}"
                + (f"; {conf}" if conf else ""))

    def to_dict(self) -> dict:
        return {**super().to_dict(), "config": dict(self.config)}


@dataclass(frozen=True)
class IncreasePartitions(Action):
    old: int = 0
    new: int = 0
    kind = "increase_partitions"
    writes = drift = True

    def detail(self) -> str:
        return f"partitions {self.old} → {self.new} (in place; existing keys may map to new partitions)"



@dataclass(frozen=True)
class ConfigChange:
    key: str
    old: str | None
    new: str

    def __str__(self) -> str:
        return f"{self.key}: {'(unset)' if self.old is None else self.old} → {self.new}"


@dataclass(frozen=True)
class AlterConfig(Action):
    changes: tuple[ConfigChange, ...] = ()
    kind = "alter_config"
    writes = drift = True

    def detail(self) -> str:
        return "; ".join(str(c) for c in self.changes)



@dataclass(frozen=True)
class ReplicationFactorDiffers(Action):
    declared: int = 0
    observed: tuple[int, ...] = ()
    kind = "replication_factor"
    drift = True

    def detail(self) -> str:
        seen = "/".join(str(n) for n in self.observed)
        return f"replication factor is {seen}, declared {self.declared}; not changed: {REASSIGNMENT_HINT}"



@dataclass(frozen=True)
class RefusedDecrease(Action):
    observed: int = 0
    declared: int = 0
    kind = "decrease_refused"
    drift = blocking = True

    def detail(self) -> str:
        return (f"partitions {self.observed} → {self.declared} refused: Kafka cannot remove partitions; "
                f"declare {self.observed} or more, or recreate the topic yourself (data loss)")



@dataclass(frozen=True)
class NotEnoughBrokers(Action):
    replication_factor: int = 0
    brokers: int = 0
    kind = "not_enough_brokers"
    drift = blocking = True

    def detail(self) -> str:
        return (f"replication factor {self.replication_factor} declared but only {self.brokers} "
                f"live broker(s); start the missing brokers or lower the replication factor")



@dataclass(frozen=True)
class UndeclaredTopic(Action):
    partitions: int = 0
    kind = "undeclared"

    def detail(self) -> str:
        return "not declared; kept (not drift; `topics apply --allow-delete` deletes it)"



@dataclass(frozen=True)
class DeleteTopic(Action):
    partitions: int = 0
    kind = "delete"
    writes = True

    def detail(self) -> str:
        return f"not declared; deleted because --allow-delete was given ({self.partitions} partition(s), data lost)"



@dataclass(frozen=True)
class TopicPlan:
    brokers: int
    declared: tuple[str, ...]
    actions: tuple[Action, ...]
    internal_skipped: tuple[str, ...] = ()  # internal topics seen and left alone
    allow_delete: bool = False

    def of(self, *kinds: type[Action]) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kinds)]

    @property
    def writes(self) -> list[Action]:
        return [a for a in self.actions if a.writes]

    @property
    def drift(self) -> list[Action]:
        return [a for a in self.actions if a.drift]

    @property
    def blocking(self) -> list[Action]:
        return [a for a in self.actions if a.blocking]

    @property
    def undeclared(self) -> list[Action]:
        return self.of(UndeclaredTopic, DeleteTopic)

    @property
    def exit_code(self) -> int:  # `topics plan`: 1 when something blocks applying it
        return 1 if self.blocking else 0

    @property
    def drift_exit_code(self) -> int:  # `topics check`: 1 when the cluster differs from the declaration
        return 1 if self.drift else 0

    @property
    def status(self) -> str:
        if self.blocking:
            return "blocked"
        return "drift" if self.drift or self.of(DeleteTopic) else "in_sync"

    def to_dict(self) -> dict:
        return {"status": self.status, "brokers": self.brokers, "declared": list(self.declared),
                "allow_delete": self.allow_delete, "actions": [a.to_dict() for a in self.actions],
                "internal_topics_skipped": list(self.internal_skipped),
                "summary": {"writes": len(self.writes), "drift": len(self.drift),
                            "blocking": len(self.blocking), "undeclared": len(self.undeclared)}}


def same_value(key: str, declared: str, observed: str | None) -> bool:
    if observed is None:
        return False
    a, b = declared.strip(), observed.strip()
    if key in _UNORDERED_LISTS:
        return sorted(p.strip() for p in a.split(",")) == sorted(p.strip() for p in b.split(","))
    if a.lower() in ("true", "false"):
        return a.lower() == b.lower()
    return a == b


def plan_topics(declared: Sequence[TopicSpec], observed: Mapping[str, ObservedTopic] | Iterable[ObservedTopic],
                brokers: int, allow_delete: bool = False) -> TopicPlan:
    """Diff declared topics against the cluster. Per topic: create, or else partition
    change, config changes, replication-factor report; blockers precede what they block."""
    validate_declared(declared)
    seen = dict(observed) if isinstance(observed, Mapping) else {t.name: t for t in observed}
    actions: list[Action] = []
    for spec in sorted(declared, key=lambda s: s.name):
        topic = seen.get(spec.name)
        # Only writes that place replicas need enough live brokers; an in-sync topic on a
        # cluster with a broker down is the kafka probe's "degraded", not topic drift.
        if topic is None:
            if spec.replication_factor > brokers:
                actions.append(NotEnoughBrokers(spec.name, spec.replication_factor, brokers))
            actions.append(CreateTopic(spec.name, spec.partitions, spec.replication_factor,
                                       tuple(sorted(spec.config.items()))))
            continue
        if spec.partitions < topic.partitions:
            actions.append(RefusedDecrease(spec.name, topic.partitions, spec.partitions))
        elif spec.partitions > topic.partitions:
            # new partitions get the topic's current replication factor
            placed = max(topic.replication_factors, default=spec.replication_factor)
            if placed > brokers:
                actions.append(NotEnoughBrokers(spec.name, placed, brokers))
            actions.append(IncreasePartitions(spec.name, topic.partitions, spec.partitions))
        # Only declared keys; whatever the broker's source for a value (topic override,
        # broker default), the current value is what the declaration is compared to.
        changes = tuple(ConfigChange(k, topic.config.get(k), v) for k, v in sorted(spec.config.items())
                        if not same_value(k, v, topic.config.get(k)))
        if changes:
            actions.append(AlterConfig(spec.name, changes))
        if set(topic.replication_factors) != {spec.replication_factor}:
            actions.append(ReplicationFactorDiffers(spec.name, spec.replication_factor,
                                                    tuple(sorted(topic.replication_factors))))
    names = {s.name for s in declared}
    internal: list[str] = []
    for name in sorted(set(seen) - names):
        topic = seen[name]
        if topic.is_internal:
            internal.append(name)  # never listed for deletion, whatever the flags
        elif allow_delete:
            actions.append(DeleteTopic(name, topic.partitions))
        else:
            actions.append(UndeclaredTopic(name, topic.partitions))
    return TopicPlan(brokers, tuple(sorted(names)), tuple(actions), tuple(internal), allow_delete)


# --- what apply did --------------------------------------------------------------------

@dataclass(frozen=True)
class ActionResult:
    action: Action
    outcome: str  # done | failed | reported | refused | not_attempted
    error: str | None = None

    def to_dict(self) -> dict:
        return {**self.action.to_dict(), "outcome": self.outcome, "error": self.error}


@dataclass(frozen=True)
class ApplyOutcome:
    plan: TopicPlan
    results: tuple[ActionResult, ...]
    calls: Mapping[str, int]  # admin API name -> invocations ("create_topics:validate_only", ...)
    refused: tuple[str, ...] = ()  # why nothing was written, when apply refused
    duration_s: float = 0.0

    @property
    def reads(self) -> int:
        return sum(n for api, n in self.calls.items() if not is_write_call(api))

    @property
    def writes(self) -> int:
        return sum(n for api, n in self.calls.items() if is_write_call(api))

    @property
    def failed(self) -> list[ActionResult]:
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def status(self) -> str:
        if self.refused:
            return "refused"
        if self.failed:
            return "failed"
        return "applied" if any(r.outcome == "done" for r in self.results) else "in_sync"

    @property
    def exit_code(self) -> int:
        return 1 if self.status in ("refused", "failed") else 0

    def to_dict(self) -> dict:
        return {"status": self.status, "brokers": self.plan.brokers, "declared": list(self.plan.declared),
                "allow_delete": self.plan.allow_delete, "refused": list(self.refused),
                "actions": [r.to_dict() for r in self.results],
                "internal_topics_skipped": list(self.plan.internal_skipped),
                "admin_calls": {"reads": self.reads, "writes": self.writes, "by_api": dict(self.calls)},
                "duration_s": round(self.duration_s, 3)}


WRITE_APIS = frozenset({"create_topics", "create_partitions", "incremental_alter_configs", "delete_topics",
                        "create_acls", "delete_acls"})


def is_write_call(api: str) -> bool:
    """validate_only requests change nothing on the broker, so they count as reads."""
    return api in WRITE_APIS
