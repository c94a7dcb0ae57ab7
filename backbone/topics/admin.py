"""Kafka topics against a live cluster: observe it, apply a `TopicPlan`. Every admin call
goes through `CountingAdmin`, so apply can say exactly how many reads and writes it made.

One admin call per API per step (all topics batched), so an up-to-date cluster costs
list_topics + describe_configs and nothing else. apply validates the whole plan twice before
its first write: the pure plan must have no blocker, then the broker checks every write
with validate_only; a problem in either place means nothing is written.
"""
from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from typing import Any, Iterable, Sequence

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic, ResourceType)

from ..contract import KafkaEndpoint, TopicSpec
from ..errors import BackboneError
from ..clients import kafka as kafka_client
from ..clients.kafka import kafka_text
from .model import (Action, ActionResult, AlterConfig, ApplyOutcome, CreateTopic, DeleteTopic, IncreasePartitions,
                     ObservedTopic, TopicPlan, plan_topics)


class TopicsError(BackboneError):
    """Kafka could not be observed or changed (exit 1). `code` is for machines."""

    context = "topics"

    def __init__(self, message: str, code: str = "kafka_error"):
        super().__init__(message)
        self.code = code


class CountingAdmin:
    """AdminClient wrapper: same calls, each one counted by API name. A validate_only call is
    counted as "<api>:validate_only" (it changes nothing, so it is a read)."""

    def __init__(self, endpoint: KafkaEndpoint, timeout_s: float, admin: AdminClient | None = None):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        # topic and ACL administration is the admin principal's duty
        self.admin = admin if admin is not None else kafka_client.admin(endpoint, timeout_s, duty="admin")
        self.calls: Counter[str] = Counter()
        self.started = time.perf_counter()  # apply reports its time from here, observation included

    def _count(self, api: str, validate_only: bool = False) -> None:
        self.calls[f"{api}:validate_only" if validate_only else api] += 1

    def list_topics(self):
        self._count("list_topics")
        try:
            return self.admin.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            text = kafka_text(exc)
            code = "timeout" if "timed out" in text.lower() else "unreachable"
            raise TopicsError(f"Kafka at {self.endpoint.bootstrap_servers} did not answer: {text}", code) from None

    def describe_configs(self, names: Sequence[str]) -> dict[str, Any]:
        self._count("describe_configs")
        futures = self.admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names],
                                              request_timeout=self.timeout_s)
        return {res.name: f for res, f in futures.items()}

    def describe_topics(self, names: Sequence[str]) -> dict[str, Any]:
        self._count("describe_topics")
        return self.admin.describe_topics(TopicCollection(list(names)), request_timeout=self.timeout_s)

    def _timeouts(self) -> dict[str, float]:
        return {"request_timeout": self.timeout_s, "operation_timeout": self.timeout_s}

    def create_topics(self, topics: list[NewTopic], validate_only: bool = False) -> dict[str, Any]:
        self._count("create_topics", validate_only)
        return self.admin.create_topics(topics, validate_only=validate_only, **self._timeouts())

    def create_partitions(self, parts: list[NewPartitions], validate_only: bool = False) -> dict[str, Any]:
        self._count("create_partitions", validate_only)
        return self.admin.create_partitions(parts, validate_only=validate_only, **self._timeouts())

    def incremental_alter_configs(self, resources: list[ConfigResource], validate_only: bool = False) -> dict[str, Any]:
        self._count("incremental_alter_configs", validate_only)
        futures = self.admin.incremental_alter_configs(resources, validate_only=validate_only,
                                                       request_timeout=self.timeout_s)
        return {res.name: f for res, f in futures.items()}

    def delete_topics(self, names: list[str]) -> dict[str, Any]:
        self._count("delete_topics")
        return self.admin.delete_topics(names, **self._timeouts())

    def describe_acls(self, acl_filter):
        self._count("describe_acls")
        return self.admin.describe_acls(acl_filter, request_timeout=self.timeout_s)

    def create_acls(self, bindings: list) -> dict[Any, Any]:
        self._count("create_acls")
        return self.admin.create_acls(bindings, request_timeout=self.timeout_s)

    def delete_acls(self, filters: list) -> dict[Any, Any]:
        self._count("delete_acls")
        return self.admin.delete_acls(filters, request_timeout=self.timeout_s)

    def wait(self, futures: dict[str, Any]) -> dict[str, str | None]:
        """topic -> None on success, else the broker's error text."""
        out: dict[str, str | None] = {}
        for name, future in futures.items():
            try:
                future.result(timeout=self.timeout_s + 5)
                out[name] = None
            except (KafkaException, concurrent.futures.TimeoutError) as exc:
                out[name] = kafka_text(exc)
        return out


# --- observe ---------------------------------------------------------------------------

def observe(admin: CountingAdmin, declared: Iterable[str]) -> tuple[int, dict[str, ObservedTopic]]:
    """(live broker count, every topic on the cluster). Configs are read for declared topics
    only: those are the only ones a plan compares."""
    metadata = admin.list_topics()
    brokers = len(metadata.brokers)
    shapes: dict[str, tuple[int, tuple[int, ...]]] = {}
    for name, meta in metadata.topics.items():
        if not meta.partitions:
            if meta.error is not None and meta.error.name() == "UNKNOWN_TOPIC_OR_PART":
                continue  # being deleted
            raise TopicsError(f"topic {name}: no partition metadata ({kafka_text(KafkaException(meta.error))})")
        shapes[name] = (len(meta.partitions), tuple(sorted({len(p.replicas) for p in meta.partitions.values()})))
    wanted = set(declared)
    configs: dict[str, dict[str, str | None]] = {}
    to_describe = sorted(wanted & set(shapes))
    if to_describe:
        for name, error_or_entries in _results(admin, admin.describe_configs(to_describe)).items():
            if isinstance(error_or_entries, str):
                raise TopicsError(f"topic {name}: cannot read its configuration: {error_or_entries}")
            configs[name] = {k: e.value for k, e in error_or_entries.items()}
    # Internal topics all start with "__" today; ask Kafka about the others anyway, so a
    # topic it marks internal is never offered for deletion whatever its name.
    marked: dict[str, bool] = {}
    others = sorted(n for n in set(shapes) - wanted if not n.startswith("__"))
    if others:
        for name, desc in _results(admin, admin.describe_topics(others)).items():
            marked[name] = True if isinstance(desc, str) else bool(desc.is_internal)  # unknown: treat as internal
    observed = {name: ObservedTopic(name, parts, rfs, configs.get(name, {}), marked.get(name, False))
                for name, (parts, rfs) in shapes.items()}
    return brokers, observed


def _results(admin: CountingAdmin, futures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, future in futures.items():
        try:
            out[name] = future.result(timeout=admin.timeout_s + 5)
        except (KafkaException, concurrent.futures.TimeoutError) as exc:
            out[name] = kafka_text(exc)
    return out


def plan_cluster(admin: CountingAdmin, declared: Sequence[TopicSpec], allow_delete: bool = False) -> TopicPlan:
    brokers, observed = observe(admin, [s.name for s in declared])
    return plan_topics(declared, observed, brokers, allow_delete=allow_delete)


# --- apply -----------------------------------------------------------------------------

def _requests(plan: TopicPlan) -> dict[str, tuple[list[Action], list[Any]]]:
    """The admin requests a plan needs, per API, in the order apply sends them."""
    creates = plan.of(CreateTopic)
    increases = plan.of(IncreasePartitions)
    alters = plan.of(AlterConfig)
    deletes = plan.of(DeleteTopic)
    return {
        "create_topics": (creates, [NewTopic(a.topic, a.partitions, a.replication_factor, config=dict(a.config))
                                    for a in creates]),
        "create_partitions": (increases, [NewPartitions(a.topic, a.new) for a in increases]),
        "incremental_alter_configs": (alters, [ConfigResource(ResourceType.TOPIC, a.topic, incremental_configs=[
            ConfigEntry(c.key, c.new, incremental_operation=AlterConfigOpType.SET) for c in a.changes])
            for a in alters]),
        "delete_topics": (deletes, [a.topic for a in deletes]),
    }


def apply_plan(admin: CountingAdmin, plan: TopicPlan) -> ApplyOutcome:
    requests = {api: req for api, req in _requests(plan).items() if req[0]}

    def outcome(results: list[ActionResult], refused: list[str] = ()) -> ApplyOutcome:
        return ApplyOutcome(plan, tuple(results), dict(admin.calls), tuple(refused),
                            time.perf_counter() - admin.started)

    def untouched(label: str) -> list[ActionResult]:
        return [ActionResult(a, label if a.writes or a.blocking else _reported(a)) for a in plan.actions]

    if plan.blocking:
        return outcome(untouched("refused"), [f"{a.topic}: {a.detail()}" for a in plan.blocking])

    # Broker-side dry run of every write (delete_topics has no validate_only; a delete of an
    # existing topic cannot be invalid) before the first real one.
    problems: list[str] = []
    for api, (actions, payload) in requests.items():
        if api == "delete_topics":
            continue
        errors = admin.wait(getattr(admin, api)(payload, validate_only=True))
        problems += [f"{name}: {api} rejected by the broker: {text}" for name, text in sorted(errors.items()) if text]
    if problems:
        return outcome(untouched("not_attempted"), problems)

    done: dict[tuple[str, str], str | None] = {}
    for api, (actions, payload) in requests.items():
        # Writes are per topic and independent: one failing topic does not stop the others.
        for name, text in admin.wait(getattr(admin, api)(payload)).items():
            done[(api, name)] = text
    results = []
    for action in plan.actions:
        if not action.writes:
            results.append(ActionResult(action, _reported(action)))
            continue
        text = done.get((_API[type(action)], action.topic), "no answer from the broker")
        results.append(ActionResult(action, "failed" if text else "done", text))
    return outcome(results)


_API = {CreateTopic: "create_topics", IncreasePartitions: "create_partitions",
        AlterConfig: "incremental_alter_configs", DeleteTopic: "delete_topics"}


def _reported(action: Action) -> str:
    return "kept" if action.kind == "undeclared" else "reported"
