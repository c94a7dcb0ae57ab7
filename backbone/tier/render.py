"""What `backbone tier` prints: each command's outcome as one JSON line or as text. Pure:
the CLI writes the text (redacted) and returns the result's exit code."""
from __future__ import annotations

import json

from .plan import Plan


def switch_text(outcome, fmt: str, stop_after: str | None) -> str:
    if fmt == "json":
        return json.dumps(outcome.__dict__, default=lambda o: o.__dict__) + "\n"
    if outcome.already:
        return (f"already switched: the institutional tier is active (cut-over {outcome.active.epoch}, "
                f"{outcome.active.since}); nothing to do\n")
    if stop_after:
        return f"stopped after {stop_after}; rerun `backbone tier switch` to go on\n"
    fence = f"{outcome.fence_ms[-1]:.0f} ms" if outcome.fence_ms else "-"
    return (f"switched: the institutional tier is active (write fence {fence}, "
            f"{sum(outcome.copied.values()):,} rows copied, {outcome.caught_up:,} changes caught up, "
            f"{outcome.replayed:,} events replayed); the reverse stream runs until `tier complete`\n")


def rollback_text(outcome, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(outcome.__dict__) + "\n"
    if outcome.forced:
        return (f"forced rollback: the bootstrap tier is active; NOT on the bootstrap side: "
                f"{outcome.not_on_bootstrap['missing']}\n")
    return (f"rolled back: the bootstrap tier is active (cut-over {outcome.epoch}, write fence "
            f"{outcome.fence_ms[-1] if outcome.fence_ms else 0:.0f} ms, {outcome.mirrored:,} change(s) mirrored)\n")


def status_text(report: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report) + "\n"
    return "".join(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}\n"
                   for key, value in report.items())


def plan_text(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan.to_dict()) + "\n"
    out = [f"active tier: {plan.active}", "", "| table | rows to move | on the target now |", "|---|---:|---:|"]
    out += [f"| {t} | {n:,} | {'-' if plan.on_target.get(t) is None else f'{plan.on_target[t]:,}'} |"
            for t, n in plan.rows.items()]
    out += ["", f"events to replay into Kafka: {plan.events:,}; cache keys to warm: {plan.cache_keys:,}"]
    if plan.estimate_s is not None:
        out.append(f"estimated copy: {plan.estimate_s:.1f} s (sample: {plan.sample_rows_per_s:,.0f} rows/s)")
    held = [t for t, n in plan.on_target.items() if n]
    if held:
        out.append(f"the target already holds rows in {', '.join(held)}: the switch keeps them and verifies "
                   "them against the bootstrap store; a difference stops it before the cut-over")
    out += ["", "preflight:"] + [f"- {p['check']}: {p['status']} ({p['summary']})" for p in plan.preflight]
    out.append("blockers: " + ("; ".join(plan.blockers) if plan.blockers else "none"))
    return "\n".join(out) + "\n"
