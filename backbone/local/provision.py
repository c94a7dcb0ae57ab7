"""Provision the data plane of a freshly started environment, the way a deploy pipeline
does after `pulumi up`: `migrate apply`, then `topics apply` (never deleting anything) with
the declared ACLs, as the admin principal. On a secure cluster the admin principal's own
ACLs are granted first by a super user (a broker's certificate, `kafka_super`): nothing else
is done with that identity."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from ..migrate import ops as migrate
from ..contract import Contract
from ..probes.kafka import describe
from ..topics.acls import apply_acls, plan_acls, plan_cluster_acls
from ..topics.admin import CountingAdmin, apply_plan, plan_cluster
from .services import LocalError

if TYPE_CHECKING:
    from ..clients.kafka import NodeAccess


def provision(contract: Contract, progress: Callable[[str], None], timeout_s: float = 30,
              kafka_super: "tuple[str, NodeAccess] | None" = None) -> None:
    state, counter = migrate.apply(migrate.engine_for(contract, timeout_s), contract)
    progress(f"migrations applied: schema at {state.head} ({counter.writes} write statement(s))")
    if contract.kafka is None:
        return
    if kafka_super is not None and "admin" in contract.kafka.principals:
        _grant_admin(contract, kafka_super, timeout_s)
    admin = CountingAdmin(contract.kafka, timeout_s)
    outcome = apply_plan(admin, plan_cluster(admin, contract.kafka.topics))
    if outcome.refused or outcome.failed:
        problems = list(outcome.refused) + [f"{r.action.topic}: {r.error}" for r in outcome.failed]
        raise LocalError("topics apply failed: " + "; ".join(problems))
    progress(f"topics applied: {len(contract.kafka.topics)} declared, {outcome.writes} admin write(s)")
    if contract.kafka.acls:
        acls = apply_acls(admin, plan_cluster_acls(admin, contract.kafka.acls))
        if acls.errors:
            raise LocalError("ACLs apply failed: " + "; ".join(f"{k}: {v}" for k, v in acls.errors.items()))
        progress(f"ACLs applied: {acls.plan.declared} declared binding(s), {acls.created} created")
        # the probe's canary topic: its user may write and read it, not create it
        from confluent_kafka.admin import NewTopic

        from ..clients.kafka import ensure_topic
        from ..probes.kafka import CANARY_TOPIC
        brokers = len(admin.list_topics().brokers)
        ensure_topic(admin.admin, NewTopic(CANARY_TOPIC, 1, min(3, brokers)), timeout_s)
    # New partitions need a moment for their followers to join the ISR; until then the
    # environment is under-replicated, and a validate run right after `up` would say so.
    deadline = time.monotonic() + timeout_s
    while True:
        lagging = describe(contract.kafka, admin.admin.list_topics(timeout=timeout_s))["under_replicated"]
        if not lagging:
            return
        if time.monotonic() > deadline:
            raise LocalError(f"partitions still under-replicated after {timeout_s:g} s: {', '.join(lagging[:5])}")
        time.sleep(0.2)


def _grant_admin(contract: Contract, kafka_super: "tuple[str, NodeAccess]", timeout_s: float) -> None:
    """The admin principal's own ACLs, granted as a broker (a super user)."""
    from ..clients.kafka import node_admin
    bootstrap, access = kafka_super
    mine = f"User:{contract.kafka.principals['admin'].user}"
    specs = [a for a in contract.kafka.acls if a.principal == mine]
    if not specs:
        return
    admin = CountingAdmin(contract.kafka, timeout_s, node_admin(bootstrap, timeout_s, access=access))
    outcome = apply_acls(admin, plan_acls(specs, [b for b in _observed(admin) if b.principal == mine]))
    if outcome.errors:
        raise LocalError("granting the Kafka admin principal its ACLs failed: "
                         + "; ".join(f"{k}: {v}" for k, v in outcome.errors.items()))


def _observed(admin: CountingAdmin):
    from ..topics.acls import observe_acls
    return observe_acls(admin)
