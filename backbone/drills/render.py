"""Drill reports: Markdown for people, and a timeline picture of every write attempt with
the fault, the detection and the recovery marked."""
from __future__ import annotations

from pathlib import Path

from ..report.figure import finish, plt
from .live import DrillResult, mark


def _fmt(v: float | None, unit: str = " s") -> str:
    return "—" if v is None else f"{v:.2f}{unit}"


def to_markdown(r: DrillResult, png: Path | None = None) -> str:
    m = r.measurement
    verdict = "✅ objectives met" if r.passed else (
        "❌ the service's promise was broken" if not r.promise_kept else "❌ objective missed")
    lines = [
        f"# Drill: {r.service} {r.fault} ({r.target}: {r.member}) on {r.platform}",
        "",
        f"**{verdict}** — {r.started_at}, {r.duration_s:.1f} s",
        "",
        "| measure | value | objective | met |",
        "|---|---|---|---|",
        f"| RTO (last ack before the fault → first ack after it) | {_fmt(m.rto_s)} | ≤ {r.objectives['rto_s']:g} s | "
        f"{'✅' if r.rto_met else '❌'} |",
        f"| RPO: acknowledged writes lost | {m.acked_lost} of {m.acked_writes} | {'0' if r.promise else '—'} | "
        f"{('✅' if r.promise_kept else '❌') if r.promise else '—'} |",
        f"| RPO: window of lost writes | {m.loss_window_s:.2f} s | ≤ {r.objectives['rpo_s']:g} s | "
        f"{'✅' if r.rpo_met else '❌'} |",
        f"| detection (fault → first failed write) | {_fmt(m.detection_s)} | | |",
        f"| failed write attempts | {m.failed_writes} | | |",
    ]
    if r.promise:
        lines += ["", f"{r.service} promises {r.promise}."]
    if r.notes:
        lines += ["", *[f"- {n}" for n in r.notes]]
    if r.partition is not None:
        lines += partition_markdown(r.partition)
    if png is not None:
        lines += ["", f"![timeline]({png.name})"]
    return "\n".join(lines) + "\n"


def partition_markdown(p: dict) -> list[str]:
    """The cut, the probes that prove it, and what the isolated member acknowledged."""
    acks, member = p["isolated_acks"], p["member"]
    peers = "; ".join(f"{name} {_ports(ports)}" for name, ports in p["peer_ports"].items())
    reached = ", ".join(f"{c['port']} {c['outcome']}" for c in p["client_probes"])
    lines = ["", "## The partition", "",
             f"Cut ports of {member}: {_ports(p['cut_ports'])} (its peers': {peers}). "
             f"{'✅ proven' if p['proven'] else '❌ not proven'}: while the cut held, every probe below had to "
             f"time out; a client still reached {member}'s ports ({reached}).", "",
             "| from | to | port | outcome | blocked |", "|---|---|---|---|---|"]
    lines += [f"| {x['from']} | {x['to']} | {x['port']} | {x['outcome']} | {mark(x['blocked'])} |" for x in p["probes"]]
    seqs = _ports(acks["seqs"][:20]) + (" …" if acks["count"] > 20 else "")
    lost = f" (seq {_ports(acks['lost_seqs'])})" if acks["lost"] else ""
    lines += ["", f"Writes {member} acknowledged while cut off ({acks['attributed']}): {acks['count']}"
                  + (f" (seq {seqs})" if acks["count"] else "")
                  + f"; read back after the takeover: {acks['present']}, lost: {acks['lost']}{lost}."]
    return lines


def _ports(values) -> str:
    return ", ".join(map(str, values))


def timeline_png(r: DrillResult, path: Path) -> Path:
    m = r.measurement
    isolated = set(r.partition["isolated_acks"]["seqs"]) if r.partition is not None else set()
    ok = [(a.finished, 1) for a in r.attempts if a.ok and a.seq not in isolated]
    cut_off = [(a.finished, 1) for a in r.attempts if a.ok and a.seq in isolated]
    bad = [(a.finished, 0) for a in r.attempts if not a.ok]
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    if ok:
        ax.scatter(*zip(*ok), s=6, color="#2e7d32", label=f"acknowledged ({len(ok)})")
    if cut_off:
        ax.scatter(*zip(*cut_off), s=10, color="#6a1b9a", label=f"acknowledged by {r.member} cut off ({len(cut_off)})")
    if bad:
        ax.scatter(*zip(*bad), s=10, color="#c62828", marker="x", label=f"failed ({len(bad)})")
    ax.axvline(r.fault_at_s, color="#c62828", linestyle="--", linewidth=1.2, label=f"{r.fault} {r.member}")
    if m.last_ok_before is not None and m.recovered_at is not None:
        ax.axvspan(m.last_ok_before, m.recovered_at, color="#ef9a9a", alpha=0.35,
                   label=f"outage: RTO {m.rto_s:.2f} s")
        ax.axvline(m.recovered_at, color="#1565c0", linewidth=1.2, label="writes resumed")
    if m.detection_s is not None:
        ax.axvline(r.fault_at_s + m.detection_s, color="#ef6c00", linestyle=":", linewidth=1.2,
                   label=f"first failure (+{m.detection_s:.2f} s)")
    ax.set_yticks([0, 1], ["failed", "acked"])
    ax.set_ylim(-0.5, 1.5)
    ax.set_xlabel("seconds since the drill started")
    lost = f", {m.acked_lost} acknowledged write(s) lost" if m.acked_lost else ", no acknowledged write lost"
    ax.set_title(f"{r.service}: {r.fault} {r.target} ({r.member}){lost}", fontsize=10)
    return finish(fig, ax, path)
