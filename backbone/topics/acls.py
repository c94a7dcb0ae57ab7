"""Kafka ACLs declared with the topics (`kafka.acls`), planned, applied and checked the same way.

Each declared entry expands to one binding per operation; the plan compares those with the
bindings the cluster holds (DescribeAcls):
- a declared binding missing on the cluster: created by apply (drift until then);
- a binding on the cluster that nothing declares: a grant nobody asked for, so drift for
  `check` (and validate), but kept: apply deletes it only with `--allow-acl-delete`.
An environment that declares no ACLs is not compared at all (an --insecure cluster has no
authorizer to ask).
"""
from __future__ import annotations

import concurrent.futures
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from ..contract import AclSpec


@dataclass(frozen=True, order=True)
class Binding:
    principal: str
    resource_type: str  # topic | group | cluster | transactional_id
    name: str
    pattern_type: str  # literal | prefixed
    operation: str
    permission: str  # allow | deny
    host: str = "*"

    def text(self) -> str:
        what = f"{self.resource_type} {self.name}" + ("*" if self.pattern_type == "prefixed" else "")
        host = "" if self.host == "*" else f" from {self.host}"
        return f"{self.principal} {self.permission} {self.operation} on {what}{host}"


def declared_bindings(specs: Sequence[AclSpec]) -> set[Binding]:
    return {Binding(s.principal, s.resource_type, s.name, s.pattern_type, op, "allow" if s.allow else "deny", s.host)
            for s in specs for op in s.operations}


@dataclass(frozen=True)
class AclPlan:
    declared: int  # bindings declared
    missing: tuple[Binding, ...]
    undeclared: tuple[Binding, ...]
    allow_delete: bool = False

    @property
    def creates(self) -> list[Binding]:
        return list(self.missing)

    @property
    def deletes(self) -> list[Binding]:
        return list(self.undeclared) if self.allow_delete else []

    @property
    def drift(self) -> list[str]:
        return ([f"ACL missing: {b.text()}" for b in self.missing]
                + [f"ACL not declared: {b.text()}" for b in self.undeclared])

    @property
    def status(self) -> str:
        return "drift" if self.drift else "in_sync"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "declared_bindings": self.declared, "allow_delete": self.allow_delete,
                "missing": [asdict(b) for b in self.missing], "undeclared": [asdict(b) for b in self.undeclared]}


def plan_acls(specs: Sequence[AclSpec], observed: Iterable[Binding], allow_delete: bool = False) -> AclPlan:
    want, have = declared_bindings(specs), set(observed)
    return AclPlan(len(want), tuple(sorted(want - have)), tuple(sorted(have - want)), allow_delete)


@dataclass(frozen=True)
class AclOutcome:
    plan: AclPlan
    errors: dict[str, str]  # binding text -> the broker's error
    created: int = 0
    deleted: int = 0

    @property
    def status(self) -> str:
        if self.errors:
            return "failed"
        return "applied" if self.created or self.deleted else "in_sync"

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "status": self.status, "created": self.created, "deleted": self.deleted,
                "errors": self.errors}


# --- the cluster (confluent-kafka) ------------------------------------------------------

def _enums():
    from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType
    resources = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.BROKER,
                 "transactional_id": ResourceType.TRANSACTIONAL_ID}
    return resources, AclOperation, AclPermissionType, ResourcePatternType


def to_binding(b: Binding):
    from confluent_kafka.admin import AclBinding
    resources, ops, perms, patterns = _enums()
    return AclBinding(resources[b.resource_type], b.name, patterns[b.pattern_type.upper()], b.principal, b.host,
                      ops[b.operation.upper()], perms[b.permission.upper()])


def _exact_filter(b: Binding):
    from confluent_kafka.admin import AclBindingFilter
    resources, ops, perms, patterns = _enums()
    return AclBindingFilter(resources[b.resource_type], b.name, patterns[b.pattern_type.upper()], b.principal,
                            b.host, ops[b.operation.upper()], perms[b.permission.upper()])


def from_binding(acl) -> Binding:
    resources, _ops, _perms, _patterns = _enums()
    kind = next((k for k, v in resources.items() if v == acl.restype), acl.restype.name.lower())
    return Binding(acl.principal, kind, acl.name, acl.resource_pattern_type.name.lower(),
                   acl.operation.name.lower(), acl.permission_type.name.lower(), acl.host)


def observe_acls(admin) -> list[Binding]:
    """Every binding on the cluster (`admin` is a CountingAdmin). Raises TopicsError when the
    cluster will not say (no authorizer, or the principal may not describe ACLs)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AclBindingFilter

    from ..clients.kafka import kafka_text
    from .admin import TopicsError
    resources, ops, perms, patterns = _enums()
    from confluent_kafka.admin import ResourceType
    everything = AclBindingFilter(ResourceType.ANY, None, patterns.ANY, None, None, ops.ANY, perms.ANY)
    try:
        found = admin.describe_acls(everything).result(timeout=admin.timeout_s + 5)
    except (KafkaException, concurrent.futures.TimeoutError) as exc:
        raise TopicsError(f"cannot read the cluster's ACLs: {kafka_text(exc)}", "acls_unreadable") from None
    return [from_binding(a) for a in found]


def plan_cluster_acls(admin, specs: Sequence[AclSpec], allow_delete: bool = False) -> AclPlan:
    return plan_acls(specs, observe_acls(admin), allow_delete)


def apply_acls(admin, plan: AclPlan) -> AclOutcome:
    """Create what is missing; delete undeclared bindings only when the plan allows it."""
    errors: dict[str, str] = {}
    created = deleted = 0
    if plan.creates:
        bindings = [to_binding(b) for b in plan.creates]
        futures = admin.create_acls(bindings)
        for b, binding in zip(plan.creates, bindings):
            text = admin.wait({"acl": futures[binding]})["acl"]
            if text:
                errors[b.text()] = text
            else:
                created += 1
    if plan.deletes:
        filters = [_exact_filter(b) for b in plan.deletes]
        futures = admin.delete_acls(filters)
        for b, binding_filter in zip(plan.deletes, filters):
            text = admin.wait({"acl": futures[binding_filter]})["acl"]
            if text:
                errors[b.text()] = text
            else:
                deleted += 1
    return AclOutcome(plan, errors, created, deleted)


# --- rendering ----------------------------------------------------------------------------

def acl_lines(plan: AclPlan, outcome: AclOutcome | None = None, *, check: bool = False) -> list[str]:
    """The ACL section of a topics plan / check / apply report (Markdown): `check` lists the
    differences, plan and apply show each binding's action."""
    lines = ["", f"## ACLs: {plan.declared} declared binding(s)", ""]
    if not plan.drift:
        return lines + ["In sync: every declared ACL is on the cluster and no other."]
    if check:
        return lines + [f"**Drift: {len(plan.drift)} ACL difference(s)** (exit 1). `topics apply` creates the "
                        "missing ones; `--allow-acl-delete` removes the undeclared ones.", ""] + \
            [f"- {d}" for d in plan.drift]
    rows = [("create" if outcome is None else "❌ failed" if b.text() in outcome.errors else "✅ created", b)
            for b in plan.missing]
    rows += [("⚠️ delete" if plan.allow_delete else "not declared (kept; drift)", b) for b in plan.undeclared]
    lines += ["| principal | ACL | action |", "|---|---|---|"]
    lines += [f"| {b.principal} | {b.permission} {b.operation} on {b.resource_type} {b.name}"
              f"{'*' if b.pattern_type == 'prefixed' else ''} | {label} |" for label, b in rows]
    if plan.undeclared and not plan.allow_delete:
        lines += ["", "Undeclared ACLs are drift but kept: `topics apply --allow-acl-delete` deletes them."]
    if outcome is not None and outcome.errors:
        lines += [""] + [f"- {text}: {error}" for text, error in sorted(outcome.errors.items())]
    return lines
