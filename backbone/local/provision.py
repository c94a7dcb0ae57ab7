"""Provision the data plane of a freshly started environment, the way a deploy pipeline
does after `pulumi up`: `migrate apply`, then `topics apply` (never deleting anything) with
the declared ACLs, as the admin principal (whose own ACLs `local up` granted as the cluster
came up: local/kafka.py, grant_admin)."""
from __future__ import annotations

import time
from typing import Callable

from ..migrate import ops as migrate
from ..contract import Contract
from ..probes.kafka import describe
from ..topics.acls import apply_acls, plan_cluster_acls
from ..topics.admin import CountingAdmin, apply_plan, plan_cluster
from .services import LocalError


def provision(contract: Contract, progress: Callable[[str], None], timeout_s: float = 30) -> None:
    state, counter = migrate.apply(migrate.engine_for(contract, timeout_s, duty="owner"), contract)
    progress(f"migrations applied: schema at {state.head} ({counter.writes} write statement(s))")
    if contract.kafka is None:
        return
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

