"""Render topic plans, checks and apply outcomes as Markdown or JSON. Pure.

`header` carries what the report is about (environment, bootstrap servers); callers scrub
the returned text with `Redactor` before printing it.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from .model import Action, AlterConfig, ApplyOutcome, TopicPlan, is_write_call

_LABEL = {
    "create": "create",
    "increase_partitions": "increase partitions",
    "alter_config": "alter config",
    "replication_factor": "replication factor (report only)",
    "decrease_refused": "❌ refused: partition decrease",
    "not_enough_brokers": "❌ refused: not enough brokers",
    "undeclared": "undeclared (kept)",
    "delete": "⚠️ delete",
}
_OUTCOME = {"done": "✅ done", "failed": "❌ failed", "reported": "reported", "kept": "kept",
            "refused": "not done (refused)", "not_attempted": "not done"}
UNDECLARED_NOTE = ("Undeclared topics are listed, not drift: they are deleted only by "
                   "`topics apply --allow-delete`.")
INTERNAL_NOTE = "Internal topics are never touched"


def _rows(action: Action) -> list[tuple[str, str, str]]:
    """One row per change; an alter-config action gives one row per key (old → new)."""
    if isinstance(action, AlterConfig):
        return [(action.topic, f"config {c.key}", f"{'(unset)' if c.old is None else c.old} → {c.new}")
                for c in action.changes]
    return [(action.topic, _LABEL.get(action.kind, action.kind), action.detail())]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _intro(title: str, header: Mapping[str, Any], plan: TopicPlan) -> list[str]:
    return [f"# Kafka topics {title}: {header.get('environment', '?')}", "",
            f"Cluster `{header.get('bootstrap_servers', '?')}`: {plan.brokers} live broker(s); "
            f"{len(plan.declared)} topic(s) declared.", ""]


def _notes(plan: TopicPlan) -> list[str]:
    lines = []
    if plan.undeclared and not plan.allow_delete:
        lines.append(UNDECLARED_NOTE)
    if plan.internal_skipped:
        lines.append(f"{INTERNAL_NOTE}: {', '.join(plan.internal_skipped)}.")
    return ["", *lines] if lines else []


def _json(command: str, header: Mapping[str, Any], body: dict[str, Any]) -> str:
    return json.dumps({"command": f"topics {command}", **header, **body}, indent=2, ensure_ascii=False) + "\n"


def plan_summary(plan: TopicPlan) -> str:
    if plan.status == "blocked":
        return f"blocked: {len(plan.blocking)} problem(s) stop apply; nothing would be changed"
    if plan.status == "in_sync":
        return "in sync: nothing to change"
    reported = len([a for a in plan.drift if not a.writes])
    return f"{len(plan.writes)} change(s) to apply" + (f", {reported} reported only" if reported else "")


def render_plan(plan: TopicPlan, fmt: str, header: Mapping[str, Any]) -> str:
    if fmt == "json":
        return _json("plan", header, {**plan.to_dict(), "summary_text": plan_summary(plan)})
    lines = _intro("plan", header, plan) + [f"**Plan: {plan_summary(plan)}.**", ""]
    if plan.actions:
        lines += ["| topic | action | change |", "|---|---|---|"]
        lines += [f"| {_cell(t)} | {_cell(k)} | {_cell(d)} |" for a in plan.actions for t, k, d in _rows(a)]
    else:
        lines.append("No topics declared and none on the cluster.")
    if plan.blocking:
        lines += ["", "`topics apply` refuses this plan as a whole: fix the refused rows first."]
    return "\n".join(lines + _notes(plan)) + "\n"


def check_problems(plan: TopicPlan) -> list[str]:
    """One line per difference, naming the topic and (for configs) the key."""
    out = []
    for action in plan.drift:
        out += [f"{t}: {k}: {d}" for t, k, d in _rows(action)]
    return out


def render_check(plan: TopicPlan, fmt: str, header: Mapping[str, Any]) -> str:
    problems = check_problems(plan)
    if fmt == "json":
        return _json("check", header, {"in_sync": not problems, "exit_code": 1 if problems else 0,
                                       "differences": problems, **plan.to_dict()})
    lines = _intro("check", header, plan)
    if problems:
        lines += [f"**Drift: {len(problems)} difference(s)** (exit 1). `topics plan` shows the fixes; "
                  "`topics apply` makes those it can.", ""]
        lines += [f"- {p}" for p in problems]
    else:
        lines.append(f"**In sync**: the {len(plan.declared)} declared topic(s) match the cluster.")
    kept = [a.topic for a in plan.undeclared]
    if kept:
        lines += ["", f"Undeclared topics (not drift): {', '.join(kept)}."]
    if plan.internal_skipped:
        lines += ["", f"{INTERNAL_NOTE}: {', '.join(plan.internal_skipped)}."]
    return "\n".join(lines) + "\n"


def apply_summary(outcome: ApplyOutcome) -> str:
    done = len([r for r in outcome.results if r.outcome == "done"])
    if outcome.status == "refused":
        return "refused: nothing was changed"
    if outcome.status == "failed":
        return f"failed: {len(outcome.failed)} change(s) failed, {done} made"
    if outcome.status == "in_sync":
        return "nothing to do: the cluster matches the declared topics"
    return f"applied {done} change(s)"


def calls_line(outcome: ApplyOutcome) -> str:
    def part(n: int, what: str, writes: bool) -> str:
        apis = ", ".join(f"{api} {c}" for api, c in sorted(outcome.calls.items())
                         if is_write_call(api) == writes)
        return f"{n} {what}" + (f" ({apis})" if apis else "")
    return (f"Admin calls: {part(outcome.reads, 'read(s)', False)}, "
            f"{part(outcome.writes, 'write(s)', True)}. Took {outcome.duration_s:.2f} s.")


def render_apply(outcome: ApplyOutcome, fmt: str, header: Mapping[str, Any]) -> str:
    if fmt == "json":
        return _json("apply", header, {**outcome.to_dict(), "exit_code": outcome.exit_code,
                                       "summary_text": apply_summary(outcome)})
    plan = outcome.plan
    lines = _intro("apply", header, plan) + [f"**Result: {apply_summary(outcome)}.**", ""]
    if outcome.refused:
        lines += ["Apply checks the whole plan before its first write; these stopped it:", ""]
        lines += [f"- {_cell(r)}" for r in outcome.refused] + [""]
    if outcome.results:
        lines += ["| topic | action | change | outcome |", "|---|---|---|---|"]
        for r in outcome.results:
            outcome_cell = _OUTCOME.get(r.outcome, r.outcome) + (f": {r.error}" if r.error else "")
            lines += [f"| {_cell(t)} | {_cell(k)} | {_cell(d)} | {_cell(outcome_cell)} |" for t, k, d in _rows(r.action)]
        lines.append("")
    lines.append(calls_line(outcome))
    return "\n".join(lines + _notes(plan)) + "\n"
