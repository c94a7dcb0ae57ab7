"""`backbone drill run --plan FILE`: a quarter's scenarios (backbone.drills.rotation) in
sequence on one environment, one combined report and one figure with a panel per drill.

A scenario that cannot start, or fails part-way, is reported as such and the next one
still runs: a rotation's report says what was proven and what was not, never less.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..contract import Contract
from ..errors import ConfigError
from .backup import BackupDrillError
from .faults import FaultError
from .rotation import QuarterPlan, Scenario


class Rotation(list):
    """The outcomes of a quarter's drills, in plan order; passed only when every one passed."""

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


@dataclass
class Outcome:
    scenario: Scenario
    result: object | None = None   # a DrillResult or a backup drill's result
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(getattr(self.result, "passed", False))

    def figures(self) -> dict:
        r = self.result
        if r is None:
            return {"error": self.error}
        if self.scenario.kind == "backup":
            return {"restore_s": round(r.restore_s, 3), "rto_s": r.objectives["rto_s"],
                    "backup_age_s": round(r.age_s, 3),
                    "rpo_s": r.objectives["rpo_s"], "verified": r.ok}
        m = r.measurement
        return {"rto_s": m.rto_s, "rto_objective_s": r.objectives["rto_s"], "acked_writes": m.acked_writes,
                "acked_lost": m.acked_lost, "member": r.member}


def run_plan(plan: QuarterPlan, contract: Contract, backend, work_dir: Path, *, warmup_s: float = 2.0,
             max_outage_s: float = 60.0, timeout_s: float = 600.0,
             progress: Callable[[str], None] = lambda m: None) -> Rotation:
    from .session import live_drill
    outcomes = Rotation()
    for i, s in enumerate(plan.scenarios, 1):
        progress(f"[{i}/{len(plan.scenarios)}] {s.service}: {s.kind}" + (f" ({s.fault} {s.target})" if s.fault else ""))
        outcome = Outcome(s)
        try:
            if getattr(contract, s.service) is None:
                raise ConfigError(f"the contract has no {s.service} section")
            if s.kind == "backup":
                outcome.result = _backup(contract, s.service, work_dir, timeout_s, backend)
            else:
                outcome.result = live_drill(contract, backend, s.service, s.fault, s.target, warmup_s=warmup_s,
                                            max_outage_s=max_outage_s, progress=progress)
        except (ConfigError, FaultError, BackupDrillError) as exc:
            outcome.error = str(exc)
            progress(f"{s.service} {s.kind}: {outcome.error}")
        outcomes.append(outcome)
    return outcomes


def _backup(contract: Contract, service: str, work_dir: Path, timeout_s: float, backend=None):
    from .backups import BackupOptions, run_backup
    env = getattr(backend, "env", None)  # the local platform's fault backend knows its environment
    return run_backup(service, contract, BackupOptions(work_dir, timeout_s=timeout_s,
                                                       state_dir=getattr(env, "state_dir", None)))


def to_markdown(plan: QuarterPlan, outcomes: list[Outcome], png: Path | None) -> str:
    passed = all(o.passed for o in outcomes)
    lines = [f"# Drill rotation {plan.label}: {'passed' if passed else 'NOT passed'}", "",
             "| service | scenario | result | figures |", "|---|---|---|---|"]
    for o in outcomes:
        s = o.scenario
        what = s.kind if s.kind == "backup" else f"{s.kind} ({s.fault} {s.target})"
        verdict = "passed" if o.passed else ("could not run" if o.error else "FAILED")
        figures = ", ".join(f"{k} {v}" for k, v in o.figures().items())
        lines.append(f"| {s.service} | {what} | {verdict} | {figures} |")
    if png is not None:
        lines += ["", f"![drills]({png.name})"]
    for o in outcomes:
        notes = getattr(o.result, "notes", None) or ([o.error] if o.error else [])
        if notes:
            lines += ["", f"## {o.scenario.service}: {o.scenario.kind}", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def to_json(plan: QuarterPlan, outcomes: list[Outcome]) -> str:
    return json.dumps({"plan": plan.label, "passed": all(o.passed for o in outcomes),
                       "drills": [{"service": o.scenario.service, "kind": o.scenario.kind, "fault": o.scenario.fault,
                                   "passed": o.passed, "error": o.error, "figures": o.figures(),
                                   "result": o.result.to_dict() if o.result is not None else None}
                                  for o in outcomes]}, indent=2, default=str) + "\n"


def figure(plan: QuarterPlan, outcomes: list[Outcome], path: Path) -> Path:
    """One panel per drill: a live drill's writes over time (acknowledged, failed, lost) with
    the fault and recovery marked; a backup drill's restore time and age against RTO and RPO."""
    from ..report.figure import plt
    fig, axes = plt.subplots(len(outcomes), 1, figsize=(10, 2.6 * len(outcomes)), dpi=100, squeeze=False)
    for ax, o in zip(axes[:, 0], outcomes):
        s = o.scenario
        title = f"{s.service}: {s.kind}" + (f" ({s.fault} {s.target})" if s.fault else "")
        if o.result is None:
            ax.text(0.5, 0.5, f"could not run: {o.error}"[:140], ha="center", va="center", fontsize=8, wrap=True)
            ax.set_axis_off()
        elif s.kind == "backup":
            f = o.figures()
            ax.barh(["restore (s)", "backup age (s)"], [f["restore_s"], f["backup_age_s"]], color="#1565c0")
            for y, objective in enumerate((f["rto_s"], f["rpo_s"])):
                ax.plot([objective, objective], [y - 0.4, y + 0.4], color="#c62828", linewidth=2)
            ax.set_xscale("symlog")
            title += f": {'verified' if f['verified'] else 'NOT verified'} (red: RTO, RPO)"
        else:
            r, m = o.result, o.result.measurement
            lost = set(m.lost_seqs)
            ok = [(a.finished, 1) for a in r.attempts if a.ok and a.seq not in lost]
            bad = [(a.finished, 0) for a in r.attempts if not a.ok]
            gone = [(a.finished, 1) for a in r.attempts if a.ok and a.seq in lost]
            for points, color, label in ((ok, "#2e7d32", "acknowledged"), (bad, "#9e9e9e", "failed"),
                                         (gone, "#c62828", f"acknowledged, then lost ({m.acked_lost})")):
                if points:
                    ax.scatter(*zip(*points), s=4, color=color, label=label)
            ax.axvline(r.fault_at_s, color="#c62828", linestyle="--", linewidth=1)
            if m.recovered_at is not None:
                ax.axvline(m.recovered_at, color="#1565c0", linewidth=1)
            ax.set_yticks([0, 1], ["failed", "acked"])
            ax.legend(loc="center right", fontsize=7, frameon=False)
            title += f": RTO {m.rto_s if m.rto_s is None else round(m.rto_s, 2)} s, {m.acked_lost} lost"
        ax.set_title(title, fontsize=9)
    axes[-1, 0].set_xlabel("seconds (live drills: since the drill began)")
    fig.suptitle(f"Drill rotation {plan.label}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
