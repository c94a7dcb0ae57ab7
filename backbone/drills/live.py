"""The live failover drill: write continuously, inject a fault, measure the outage from the
writer's own acknowledgements, heal, read every acknowledged record back, judge against
the contract's objectives.

Definitions (all in seconds from the drill's start, from the writer's point of view):
- detection_s: fault -> the first failed write (None when no write failed).
- rto_s: the last acknowledged write before the fault -> the first acknowledged write that
  was started after the fault (a write in flight across the fault is not a recovery).
- acked_lost: acknowledged writes not found after recovery; loss_window_s: the span of
  their acknowledgement times (0 when nothing was lost). RPO is met when the loss window
  is within the objective.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass
class Attempt:
    seq: int
    started: float
    finished: float
    ok: bool
    error: str | None = None
    server: int | None = None  # the port that acknowledged it, when the workload knows


@dataclass
class Measurement:
    detection_s: float | None
    rto_s: float | None
    recovered_at: float | None
    last_ok_before: float | None
    acked_writes: int
    acked_lost: int
    lost_seqs: list[int]
    loss_window_s: float
    failed_writes: int


def measure(attempts: list[Attempt], fault_at: float, found: set[int], took_over_at: float | None = None,
            in_effect_at: float | None = None) -> Measurement:
    """Pure: the writer's history and what was read back -> the drill's figures. Recovery is
    the first write acknowledged that started once the fault was in effect (`in_effect_at`,
    when injecting it took a moment: a write already under way may still be answered). With
    `took_over_at` (a partition: the isolated member may keep answering for a while),
    recovery is the first write acknowledged after another member took over, and the RTO
    runs from the fault itself."""
    acked = [a for a in attempts if a.ok]
    before = [a.finished for a in acked if a.finished <= fault_at]
    since = took_over_at if took_over_at is not None else max(fault_at, in_effect_at or fault_at)
    after = [a.finished for a in acked if a.started >= since]
    failures = [a.finished for a in attempts if not a.ok and a.finished >= fault_at]
    last_ok = max(before) if before else None
    if took_over_at is not None:
        last_ok = fault_at
    recovered = min(after) if after else None
    lost = sorted(a.seq for a in acked if a.seq not in found)
    lost_times = [a.finished for a in acked if a.seq not in found]
    return Measurement(
        detection_s=(min(failures) - fault_at) if failures else None,
        rto_s=(recovered - last_ok) if recovered is not None and last_ok is not None else None,
        recovered_at=recovered, last_ok_before=last_ok, acked_writes=len(acked), acked_lost=len(lost),
        lost_seqs=lost, loss_window_s=(max(lost_times) - min(lost_times)) if lost_times else 0.0,
        failed_writes=sum(1 for a in attempts if not a.ok))


class Writer(threading.Thread):
    """Writes seq 0, 1, 2, ... back to back (with a small pause), recording every attempt."""

    def __init__(self, write: Callable[[int], None], clock: Callable[[], float], pause_s: float = 0.01):
        super().__init__(daemon=True, name="drill-writer")
        self.write, self.clock, self.pause_s = write, clock, pause_s
        self.attempts: list[Attempt] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self.stopping.is_set():
            started = self.clock()
            try:
                server = self.write(seq)
                self.attempts.append(Attempt(seq, started, self.clock(), True,
                                             server=server if isinstance(server, int) else None))
            except Exception as exc:  # any driver error is a failed write; the drill records it
                self.attempts.append(Attempt(seq, started, self.clock(), False, type(exc).__name__))
                self.stopping.wait(0.05)  # do not spin on a dead endpoint
            seq += 1
            self.stopping.wait(self.pause_s)


# What each service promises about acknowledged writes through a failure. Where it promises
# that none are lost, one lost write fails the drill whatever the RPO allows. Redis promises
# no such thing (asynchronous replication); its drills count the loss against the RPO.
NO_LOSS_PROMISES = {
    "timescale": "no acknowledged write lost: commits are durable (synchronous_commit on) and, with "
                 "Patroni, acknowledged by the synchronous standby",
    "kafka": "no acknowledged record lost: acks=all with min.insync.replicas=2",
}


@dataclass
class DrillResult:
    service: str
    fault: str
    target: str
    member: str
    platform: str
    started_at: str
    fault_at_s: float
    healed_at_s: float | None
    duration_s: float
    measurement: Measurement
    objectives: dict[str, float]
    notes: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    partition: dict[str, Any] | None = None  # local partitions: the cut, its proof, the isolated acks

    @property
    def rto_met(self) -> bool:
        m = self.measurement
        return m.rto_s is not None and m.rto_s <= self.objectives["rto_s"]

    @property
    def rpo_met(self) -> bool:
        return self.measurement.loss_window_s <= self.objectives["rpo_s"]

    @property
    def promise(self) -> str | None:
        return NO_LOSS_PROMISES.get(self.service)

    @property
    def promise_kept(self) -> bool:
        return self.promise is None or self.measurement.acked_lost == 0

    @property
    def passed(self) -> bool:
        return self.rto_met and self.rpo_met and self.promise_kept

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {"service": self.service, "fault": self.fault, "target": self.target, "member": self.member,
                "platform": self.platform, "started_at": self.started_at, "fault_at_s": self.fault_at_s,
                "detection_s": rounded(m.detection_s), "rto_s": rounded(m.rto_s), "acked_writes": m.acked_writes,
                "acked_lost": m.acked_lost, "lost_seqs": m.lost_seqs[:100], "loss_window_s": round(m.loss_window_s, 3),
                "failed_writes": m.failed_writes, "duration_s": round(self.duration_s, 3),
                "objectives": self.objectives, "rto_met": self.rto_met, "rpo_met": self.rpo_met,
                "promise": self.promise, "promise_kept": self.promise_kept, "passed": self.passed, "notes": self.notes,
                **({"partition": self.partition} if self.partition is not None else {}),
                "timeline": [asdict(a) for a in self.attempts]}


def isolated_acks(attempts: list[Attempt], fault_at: float, lost_seqs: list[int],
                  member_ports: set[int]) -> dict[str, Any]:
    """Pure: the writes the partitioned member acknowledged once the fault began, and whether
    each was read back. Where the workload says which server answered (Timescale), exactly
    those it answered. Otherwise (Kafka, Redis through Sentinel: the client does not say)
    every write acknowledged from the fault on, a superset: an isolated Redis master keeps
    acknowledging after the Sentinels have promoted another, so no earlier cut-off is safe."""
    known = any(a.server is not None for a in attempts if a.ok)
    seqs = [a.seq for a in attempts if a.ok and a.finished >= fault_at and (not known or a.server in member_ports)]
    lost = sorted(set(seqs) & set(lost_seqs))
    return {"attributed": "by the port that answered" if known else "by time: every write acknowledged from the "
            "fault on (which member answered is not known)",
            "count": len(seqs), "seqs": seqs, "present": len(seqs) - len(lost), "lost": len(lost),
            "lost_seqs": lost}


def rounded(v: float | None) -> float | None:
    """A figure for a report: to the millisecond, None kept (every drill report shares it)."""
    return None if v is None else round(v, 3)


def mark(ok: bool) -> str:
    """A met / missed cell in a report table."""
    return "✅" if ok else "❌"


def run_drill(workload, inject: Callable[[], str], heal: Callable[[str], None], *, service: str, fault: str,
              target: str, platform: str, objectives: dict[str, float], warmup_s: float = 2.0,
              settle_s: float = 2.0, max_outage_s: float = 60.0,
              progress: Callable[[str], None] = lambda m: None,
              failed_over: Callable[[str], bool] | None = None) -> DrillResult:
    """`inject()` faults the target and returns the member it hit; `heal(member)` undoes it.
    With `failed_over(member)` (partitions: the member is still alive), the fault holds until
    another member has taken over, and writes count as resumed only from then on."""
    origin = time.monotonic()
    clock = lambda: time.monotonic() - origin  # noqa: E731 - seconds since the drill began
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    writer = Writer(workload.write, clock)
    writer.start()
    progress(f"writing to {service} for {warmup_s:g} s before the fault")
    time.sleep(warmup_s)
    fault_at = clock()
    try:
        member = inject()
    except BaseException:
        writer.stopping.set()
        workload.close()
        raise
    in_effect = clock()  # a write that started before this may still have been answered
    progress(f"{fault} injected into {member} at t={fault_at:.2f} s; waiting for writes to resume")
    deadline = time.monotonic() + max_outage_s
    recovered, since, notes = None, in_effect if failed_over is None else None, []
    while time.monotonic() < deadline:
        if since is None:
            if not failed_over(member):
                time.sleep(0.2)
                continue
            since = clock()
            notes.append(f"another member took over from {member} at t={since:.2f} s")
            progress(notes[-1])
        recovered = next((a for a in writer.attempts if a.ok and a.started >= since), None)
        if recovered is not None:
            break
        time.sleep(0.05)
    if recovered is None:
        notes.append(f"writes did not resume within {max_outage_s:g} s")
        progress(notes[-1])
    else:
        progress(f"writes resumed at t={recovered.finished:.2f} s")
    time.sleep(settle_s)
    writer.stopping.set()
    writer.join(30)
    healed_at = None
    try:
        heal(member)
        healed_at = clock()
        progress(f"{member} healed at t={healed_at:.2f} s; reading acknowledged writes back")
    except Exception as exc:  # the measurement still stands; say that healing failed
        notes.append(f"healing {member} failed: {exc}")
    acked = [a.seq for a in writer.attempts if a.ok]
    found = workload.read_back(acked)
    workload.close()
    return DrillResult(service, fault, target, member, platform, started_at, fault_at, healed_at, clock(),
                       measure(writer.attempts, fault_at, found, since if failed_over is not None else None, in_effect),
                       objectives, notes, writer.attempts)
