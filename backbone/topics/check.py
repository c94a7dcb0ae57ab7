"""The "topics" readiness check: declared Kafka topics against the live cluster.

Drift is DOWN (code topics_drift) so `backbone validate` fails on it, like `topics check`.
Undeclared topics are reported in details but are not drift; declared ACLs missing on the
cluster, and ACLs on it that nothing declares, are drift (topics/acls.py).
"""
from __future__ import annotations

import time

from ..checks import DOWN, OK, CheckResult
from ..contract import Contract
from .model import TopicConfigError, validate_declared
from .acls import plan_cluster_acls
from .admin import CountingAdmin, TopicsError, plan_cluster
from .render import check_problems


def topics_check(contract: Contract, timeout_s: float) -> CheckResult:
    kafka = contract.kafka
    if kafka is None:
        return CheckResult("topics", OK, "not_applicable", "No Kafka in this environment; no topics to check.")
    try:
        validate_declared(kafka.topics, kafka.expected_brokers)
    except TopicConfigError as exc:
        return CheckResult("topics", DOWN, "topics_invalid", f"Declared topics are invalid: {'; '.join(exc.problems)}",
                           details={"problems": exc.problems})
    started = time.perf_counter()
    admin = CountingAdmin(kafka, timeout_s)
    try:
        plan = plan_cluster(admin, kafka.topics)
        acls = plan_cluster_acls(admin, kafka.acls) if kafka.acls else None
    except TopicsError as exc:
        return CheckResult("topics", DOWN, exc.code, f"Could not compare topics: {exc}",
                           latency_ms=(time.perf_counter() - started) * 1000, error=str(exc))
    latency = (time.perf_counter() - started) * 1000
    problems = check_problems(plan) + (acls.drift if acls else [])
    details = {"declared": list(plan.declared), "differences": problems,
               "acl_bindings_declared": acls.declared if acls else 0,
               "undeclared": [a.topic for a in plan.undeclared], "brokers": plan.brokers,
               "admin_calls": dict(admin.calls)}
    if problems:
        return CheckResult("topics", DOWN, "topics_drift",
                           f"{len(problems)} topic difference(s): {'; '.join(problems)}. Run `backbone topics plan`.",
                           latency_ms=latency, details=details)
    extra = f" ({len(details['undeclared'])} undeclared topic(s), not drift)" if details["undeclared"] else ""
    with_acls = f" and {acls.declared} ACL binding(s)" if acls else ""
    return CheckResult("topics", OK, "ok", f"{len(plan.declared)} declared topic(s){with_acls} in sync{extra}.",
                       latency_ms=latency, details=details)
