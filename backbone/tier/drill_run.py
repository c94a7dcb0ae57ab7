"""Running a switch or a rollback as a drill (`--drill`): the writer process around the
operation, the read-back, the report (Markdown + JSON) and the timeline PNG. Takes plain
values and returns the result; the CLI prints its Markdown and exits with its code."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..contract import Contract
from .drill import DrillReport, Writer, analyse, read_back
from ..data.follow import contract_for
from ..data.active_tier import RecordReader

BEFORE_S = 1.0  # the writer's lead on the old tier
AFTER_S = 1.5  # the writer keeps going this long on the new tier


@dataclass
class DrillRun:
    report: DrillReport
    markdown: str   # also written, with the JSON and the PNG, into `folder`
    folder: Path

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def drilled(operation: str, run: Callable[[], object], source: Contract, target: Contract, ref: dict, *,
            report_dir: Path | None, budget_s: float, say: Callable[[str], None]) -> DrillRun:
    """`run` (the switch or the rollback) with a writer around it; `budget_s`: the longest write
    pause that passes (the cut-over timeout); `report_dir`: default a new temporary folder."""
    before, after = ("bootstrap", "institutional") if operation == "switch" else ("institutional", "bootstrap")
    out_dir = Path(report_dir or tempfile.mkdtemp(prefix=f"tier-{operation}-drill-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    opens = {"contract": source.model_dump(mode="json")} if before == "bootstrap" else ref
    writer = Writer(opens, out_dir)
    say(f"drill: writer {writer.symbol} running on the {before} tier")
    time.sleep(BEFORE_S)
    started = time.time()
    try:
        outcome = run()
    finally:
        ended = time.time()
        time.sleep(AFTER_S)
        entries = writer.stop()
    reader = RecordReader(source.bootstrap.store)
    active = reader.read()
    reader.close()
    found = read_back(contract_for(target, active), writer.symbol)
    verification = _verification(outcome)
    spans = getattr(outcome, "fence_spans", [])
    report = analyse(operation, entries, found, before, after, started, ended, budget_s,
                     verification, spans[-1] if spans else None)
    png = timeline_png(report, out_dir / f"tier-{operation}-timeline.png")
    (out_dir / f"tier-{operation}-drill.json").write_text(json.dumps(report.to_dict(), indent=2))
    text = to_markdown(report, png)
    (out_dir / f"tier-{operation}-drill.md").write_text(text)
    return DrillRun(report, text, out_dir)


def _verification(outcome) -> str:
    summary = getattr(outcome, "verification", None)
    if summary is None:
        return "not run"
    return "equal" if summary.get("equal") else "NOT equal"


def to_markdown(r: DrillReport, png: Path) -> str:
    pause = "-" if r.pause_s is None else f"{r.pause_s * 1000:.0f} ms"
    lines = [f"# tier {r.operation} drill: {'passed' if r.passed else 'FAILED'}", "",
             "| measure | value |", "|---|---:|",
             f"| write pause (last ack on the old tier -> first on the new) | {pause} (budget {r.budget_s:g} s) |",
             f"| acknowledged writes | {r.acknowledged} ({', '.join(f'{k} {v}' for k, v in r.tiers.items())}) |",
             f"| acknowledged writes lost | {len(r.lost)} |",
             f"| failed writes | {r.failed_writes} |",
             f"| failed reads | {r.failed_reads} |",
             f"| slowest write | {r.max_write_s * 1000:.0f} ms |",
             f"| verification | {r.verification} |", "", f"![timeline]({png.name})", ""]
    if r.lost:
        lines.insert(-2, f"lost sequence numbers: {r.lost[:50]}")
    return "\n".join(lines)


def timeline_png(r: DrillReport, path: Path) -> Path:
    from ..report.figure import finish, plt
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    rows = {"bootstrap": 1, "institutional": 0}
    for tier, y in rows.items():
        done = [(s, e - s) for s, e, t, ok in r.timeline if t == tier and ok == "ok"]
        if done:
            ax.broken_barh(done, (y - 0.3, 0.6), color="#2e7d32" if tier == "institutional" else "#1565c0")
    bad = [s for s, _e, _t, ok in r.timeline if ok != "ok"]
    if bad:
        ax.scatter(bad, [0.5] * len(bad), color="#c62828", marker="x", s=14, label=f"failed writes ({len(bad)})")
    if r.operation_span:
        ax.axvspan(*r.operation_span, color="#bdbdbd", alpha=0.25, label=f"tier {r.operation}")
    if r.fence_span:
        ax.axvspan(*r.fence_span, color="#ef6c00", alpha=0.45,
                   label=f"write fence {1000 * (r.fence_span[1] - r.fence_span[0]):.0f} ms")
    ax.set_yticks(list(rows.values()), list(rows))
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlabel("seconds since the writer started (bars: each acknowledged write, start to end)")
    pause = "-" if r.pause_s is None else f"{r.pause_s * 1000:.0f} ms"
    ax.set_title(f"tier {r.operation}: write pause {pause}, {len(r.lost)} acknowledged write(s) lost, "
                 f"{r.acknowledged} acknowledged", fontsize=10)
    return finish(fig, ax, path)
