"""`backbone topics plan|apply|check`: the declared Kafka topics against the live cluster.

Exit codes: 0 done / in sync; 1 drift (check), a refused or failed apply, a blocked plan,
or Kafka unreachable; 2 bad input (unknown config key, replication factor above
kafka.expected_brokers, no Kafka in the environment).
"""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..report import EXIT_READY, Redactor
from .common import contract_from, emit, err, positive, report_args, sources_args

ACTIONS = (
    ("plan", "show what `topics apply` would do: creates, partition increases, config changes "
             "(old → new per key), replication-factor differences, undeclared topics; changes nothing"),
    ("apply", "create declared topics, increase partitions and alter configs in place; refuses the whole "
              "plan on a partition decrease; deletes undeclared topics only with --allow-delete"),
    ("check", "exit 1 if the cluster differs from the declared topics (undeclared topics are not drift) or "
              "the declared ACLs (a missing ACL, or one nothing declares, is drift)"),
)


def register(subparsers) -> None:
    text = "Kafka topics: plan, apply and check the declared topics against the cluster"
    topics = subparsers.add_parser("topics", help=text, description=text)
    actions = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    for name, help_text in ACTIONS:
        p = actions.add_parser(name, help=help_text, description=help_text)
        sources_args(p)
        report_args(p)
        p.add_argument("--timeout", type=positive, default=10.0, metavar="S",
                       help="timeout for each admin request (default 10)")
        if name in ("plan", "apply"):
            p.add_argument("--allow-delete", action="store_true",
                           help="delete topics the contract does not declare (never internal ones)"
                           + ("; with plan: show those deletions" if name == "plan" else ""))
            p.add_argument("--allow-acl-delete", action="store_true",
                           help="delete ACLs the contract does not declare (kafka.acls)"
                           + ("; with plan: show those deletions" if name == "plan" else ""))
        p.set_defaults(func=cmd_topics)


def cmd_topics(args: argparse.Namespace) -> int:
    from ..topics.acls import acl_lines, apply_acls, plan_cluster_acls
    from ..topics.admin import CountingAdmin, apply_plan, plan_cluster
    from ..topics.model import validate_declared
    from ..topics.render import apply_summary, check_problems, plan_summary, render_apply, render_check, render_plan

    # bad sources or declarations raise ConfigError (exit 2), Kafka's failures TopicsError (exit 1):
    # cli.main prints either once, redacted
    contract = contract_from(args)
    redactor = Redactor(contract.secrets())
    action = args.topics_command
    kafka = contract.kafka
    if kafka is None:
        raise ConfigError(f"topics {action}: this environment ({contract.tier} tier) has no Kafka; nothing to manage")
    validate_declared(kafka.topics, kafka.expected_brokers)  # before the broker is contacted
    header = {"environment": contract.environment, "bootstrap_servers": kafka.bootstrap_servers}
    admin = CountingAdmin(kafka, args.timeout)
    plan = plan_cluster(admin, kafka.topics, allow_delete=getattr(args, "allow_delete", False))
    outcome = apply_plan(admin, plan) if action == "apply" else None
    acls = plan_cluster_acls(admin, kafka.acls, getattr(args, "allow_acl_delete", False)) if kafka.acls else None
    acl_outcome = apply_acls(admin, acls) if acls is not None and action == "apply" else None

    if action == "plan":
        text, summary = render_plan(plan, args.format, header), plan_summary(plan)
        code = plan.exit_code
    elif action == "check":
        problems = check_problems(plan)
        text = render_check(plan, args.format, header)
        summary = f"drift: {len(problems)} difference(s)" if problems else "in sync"
        code = plan.drift_exit_code
    else:
        text, summary, code = render_apply(outcome, args.format, header), apply_summary(outcome), outcome.exit_code
    if acls is not None:
        text, summary, code = _with_acls(text, summary, code, args.format, action, acls, acl_outcome, acl_lines)
    emit(redactor.scrub(text), args.output, redactor.scrub(f"topics {action}: {summary}"))
    if code != EXIT_READY and args.output is None:
        err.print(redactor.scrub(f"backbone: topics {action}: {summary}"), markup=False)
    return code


def _with_acls(text: str, summary: str, code: int, fmt: str, action: str, acls, outcome, acl_lines):
    """The topics report with its ACL part: a section (Markdown) or an "acls" key (JSON)."""
    import json
    if action == "apply":
        part, failed = outcome.to_dict(), bool(outcome.errors)
        said = (f"ACLs: {len(outcome.errors)} failed" if failed
                else f"ACLs: {outcome.created} created, {outcome.deleted} deleted")
        code = max(code, outcome.exit_code)
    else:
        part = acls.to_dict()
        said = f"ACLs: {len(acls.drift)} difference(s)" if acls.drift else "ACLs in sync"
        if action == "check" and acls.drift:
            code = max(code, 1)
    if fmt == "json":
        document = json.loads(text)
        document["acls"] = part
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        text = text + "\n".join(acl_lines(acls, outcome, check=action == "check")) + "\n"
    return text, f"{summary}; {said}", code
