"""`--drill` for `tier switch` / `tier rollback`: an application writing and reading through
the library in another process while the operation runs, then the proof.

The writer (`python -m backbone.tier.drill FILE.json`) opens the backbone once, from the
contract of the tier it starts on, and never reopens it: it ingests one daily bar after
another (symbol DRILL<id>, a second apart) and reads the symbol's latest bar back, logging
each write's start, end, outcome and the tier it landed on. A write is acknowledged when
`ingest` returned. Afterwards every acknowledged write is read back on the active tier.
- write pause: last acknowledged write on the old tier -> first on the new one
- lost: acknowledged writes not found afterwards (must be 0)
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..contract import Contract

T0 = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class DrillReport:
    operation: str
    writes: int = 0
    acknowledged: int = 0
    failed_writes: int = 0
    failed_reads: int = 0
    lost: list[int] = field(default_factory=list)
    pause_s: float | None = None
    max_write_s: float = 0.0
    budget_s: float = 1.0
    tiers: dict[str, int] = field(default_factory=dict)      # acknowledged writes per tier
    verification: str = "not run"
    timeline: list[tuple[float, float, str, str]] = field(default_factory=list)  # (start, end, tier, outcome)
    operation_span: tuple[float, float] | None = None         # relative seconds
    fence_span: tuple[float, float] | None = None

    @property
    def passed(self) -> bool:
        return not self.lost and self.pause_s is not None and self.pause_s <= self.budget_s \
            and self.verification in ("equal", "not run")

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data.pop("timeline")
        return data


class Writer:
    """The writer process, started before the operation and stopped after it."""

    def __init__(self, opens: dict, workdir: Path, pace_s: float = 0.005):
        """`opens`: what the writer opens the backbone from, never a secret itself:
        {"contract": a bootstrap contract document} or the institutional contract's source
        ({"outputs": path} or {"stack": name})."""
        self.symbol = "DRILL" + uuid.uuid4().hex[:8].upper()
        self.log, self.stop_file = workdir / f"{self.symbol}.log", workdir / f"{self.symbol}.stop"
        spec = workdir / f"{self.symbol}.json"
        spec.write_text(json.dumps({"opens": opens, "symbol": self.symbol, "log": str(self.log),
                                    "stop": str(self.stop_file), "pace_s": pace_s}))
        self.proc = subprocess.Popen([sys.executable, "-m", "backbone.tier.drill", str(spec)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not self.entries() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        if not self.entries():
            raise RuntimeError(f"the drill writer did not start: {self.stderr()}")

    def stderr(self) -> str:
        return (self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else "")[-500:]

    def entries(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.endswith("}")]

    def stop(self, timeout_s: float = 30) -> list[dict]:
        self.stop_file.touch()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.entries()


def analyse(operation: str, entries: list[dict], found: set[int], before: str, after: str,
            started: float, ended: float, budget_s: float, verification: str,
            fence: tuple[float, float] | None = None) -> DrillReport:
    """The report from the writer's log and what was read back on the active tier."""
    r = DrillReport(operation, budget_s=budget_s, verification=verification)
    writes = [e for e in entries if e["op"] == "write"]
    r.writes = len(writes)
    acked = [e for e in writes if e["ok"]]
    r.acknowledged, r.failed_writes = len(acked), len(writes) - len(acked)
    r.failed_reads = sum(1 for e in entries if e["op"] == "read" and not e["ok"])
    r.lost = sorted(e["seq"] for e in acked if e["seq"] not in found)
    for e in acked:
        r.tiers[e["tier"]] = r.tiers.get(e["tier"], 0) + 1
    r.max_write_s = max((e["end"] - e["start"] for e in writes), default=0.0)
    old = [e["end"] for e in acked if e["tier"] == before]
    new = [e["end"] for e in acked if e["tier"] == after and (not old or e["end"] >= max(old))]
    if old and new:
        r.pause_s = min(new) - max(old)
    origin = min((e["start"] for e in entries), default=started)
    r.timeline = [(e["start"] - origin, e["end"] - origin, e.get("tier", "?"), "ok" if e["ok"] else "failed")
                  for e in writes]
    r.operation_span = (started - origin, ended - origin)
    if fence:
        r.fence_span = (fence[0] - origin, fence[1] - origin)
    return r


def read_back(contract: Contract, symbol: str) -> set[int]:
    """The writer's sequence numbers present on the active tier (opened from `contract`)."""
    from ..data import open_backbone
    with open_backbone(contract) as bb:
        rows = bb.bars([symbol], T0, T0 + dt.timedelta(days=3650), limit=10_000_000).rows
    return {round((r.ts - T0).total_seconds()) for r in rows}


def _write_loop(spec: dict) -> None:
    from ..data import open_backbone
    from ..data.rows import Bar
    from ..contract import Sources, load_contract
    opens = spec["opens"]
    contract = Contract.model_validate(opens["contract"]) if "contract" in opens else load_contract(
        Sources(outputs=Path(opens["outputs"]), environ={}) if "outputs" in opens else
        Sources(stack=opens["stack"], environ={}))
    stop, symbol, pace = Path(spec["stop"]), spec["symbol"], spec["pace_s"]
    with open(spec["log"], "a", buffering=1) as log, open_backbone(contract) as bb:
        seq = 0
        while not stop.exists():
            seq += 1
            ts = T0 + dt.timedelta(seconds=seq)
            started = time.time()
            entry = {"op": "write", "seq": seq, "start": started}
            try:
                bb.upsert("bars", [Bar(symbol, ts, float(seq), float(seq), float(seq), float(seq), seq, "drill")])
                entry.update(ok=True, tier=bb.tier)
            except Exception as exc:  # a failed write is logged, and the writer goes on
                entry.update(ok=False, tier=bb.tier, error=type(exc).__name__)
            entry["end"] = time.time()
            log.write(json.dumps(entry) + "\n")
            read = {"op": "read", "seq": seq, "start": time.time()}
            try:
                latest = bb.latest_bars([symbol]).rows
                read["ok"] = bool(latest) and (not entry["ok"] or latest[0].ts >= ts)
            except Exception as exc:
                read.update(ok=False, error=type(exc).__name__)
            read["end"] = time.time()
            log.write(json.dumps(read) + "\n")
            time.sleep(pace)


if __name__ == "__main__":
    _write_loop(json.loads(Path(sys.argv[1]).read_text()))
