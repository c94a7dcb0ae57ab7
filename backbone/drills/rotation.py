"""The quarterly drill rotation (`backbone drill plan --date`): per service, that quarter's
scenario, the exact command, the objectives and what to watch. Pure: no service is touched.

Each quarter every service runs one scenario, and the three kinds (failover, partition,
backup / restore) rotate so that each quarter exercises all three kinds across the services
and each service meets every kind within three quarters. The failover fault (kill, stop,
pause) rotates by year as well, so a service sees each fault over the years.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..contract import Objectives
from ..errors import ConfigError
from .faults import FAULTS, SERVICES

KINDS = ("failover", "partition", "backup")
FAILOVER_FAULTS = tuple(f for f in FAULTS if f != "partition")  # kill, stop, pause: a kind of their own
TARGET = {"timescale": "primary", "redis": "primary", "kafka": "leader"}
MEMBER = {"timescale": "the Patroni primary", "redis": "the Redis master", "kafka": "the partition leader"}

WATCH = {
    ("timescale", "failover"): ["Patroni promotes the replica (the leader key in etcd changes hands)",
                                "writes resume through the multi-host URL within the RTO",
                                "0 acknowledged writes lost (synchronous replication)",
                                "the old primary rejoins as a replica"],
    ("timescale", "partition"): ["the isolated primary loses its etcd lease and demotes itself: it stops "
                                 "accepting writes", "the replica is promoted within the RTO",
                                 "0 acknowledged writes lost: nothing the isolated primary acknowledged is missing",
                                 "after the heal the old primary rejoins as a replica"],
    ("timescale", "backup"): ["the restore time against the RTO", "the dump's age against the RPO",
                              "row counts per table and hypertable chunks match"],
    ("redis", "failover"): ["the Sentinels reach quorum and promote a replica",
                            "clients find the new master through Sentinel within the RTO",
                            "acknowledged writes lost are counted (replication is asynchronous)"],
    ("redis", "partition"): ["the isolated master keeps acknowledging writes from clients that still reach it",
                             "the Sentinels' majority promotes a replica",
                             "writes the isolated master acknowledged are lost: compare the count with the bound "
                             "min-replicas-to-write / min-replicas-max-lag give"],
    ("redis", "backup"): ["BGSAVE completes; the snapshot's age against the RPO", "the restore time against the RTO",
                          "key count and content digest match"],
    ("kafka", "failover"): ["a new partition leader from the in-sync replicas",
                            "producers retry through the leader change within the RTO",
                            "0 acknowledged records lost (acks=all, min.insync.replicas=2)"],
    ("kafka", "partition"): ["the cut-off leader drops out of the ISR and a new leader is elected",
                             "0 acknowledged records lost (acks=all, min.insync.replicas=2)",
                             "after the heal the old leader catches up and rejoins the ISR"],
    ("kafka", "backup"): ["topic configurations and consumer-group offsets recreated",
                          "record counts and checksums match after the replay",
                          "the restore time against the RTO, the export's age against the RPO"],
}


@dataclass
class Scenario:
    service: str
    kind: str                       # failover | partition | backup
    command: str
    objectives: dict[str, float]    # rto_s, rpo_s
    watch: list[str]
    fault: str | None = None        # the fault injected (failover, partition)
    target: str | None = None


@dataclass
class QuarterPlan:
    year: int
    quarter: int
    starts: str
    ends: str
    scenarios: list[Scenario] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.quarter}"

    def to_dict(self) -> dict:
        return {"label": self.label, **asdict(self)}


def quarter_of(day: dt.date) -> tuple[int, int, dt.date, dt.date]:
    q = (day.month - 1) // 3 + 1
    starts = dt.date(day.year, 3 * q - 2, 1)
    ends = (dt.date(day.year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)) - dt.timedelta(days=1)
    return day.year, q, starts, ends


def plan_for(day: dt.date, objectives: Objectives | None = None, source: str = "--outputs OUTPUTS") -> QuarterPlan:
    """The rotation's scenarios for the quarter holding `day`; `source` is how the commands
    name the environment (an outputs file or a stack)."""
    objectives = objectives or Objectives()
    year, q, starts, ends = quarter_of(day)
    plan = QuarterPlan(year, q, starts.isoformat(), ends.isoformat())
    for i, service in enumerate(SERVICES):
        kind = KINDS[(q - 1 + i) % len(KINDS)]
        objective = getattr(objectives, service)
        fault = FAILOVER_FAULTS[(year + q + i) % len(FAILOVER_FAULTS)] if kind == "failover" \
            else "partition" if kind == "partition" else None
        target = TARGET[service] if fault else None
        if kind == "backup":
            command = f"backbone drill backup --service {service} {source}"
        else:
            command = f"backbone drill run --service {service} --fault {fault} --target {target} {source}"
        plan.scenarios.append(Scenario(service, kind, command, {"rto_s": objective.rto_s, "rpo_s": objective.rpo_s},
                                       WATCH[(service, kind)], fault, target))
    return plan


def to_markdown(plan: QuarterPlan) -> str:
    lines = [f"# Drill rotation {plan.label} ({plan.starts} .. {plan.ends})", "",
             "| service | scenario | command | RTO | RPO |", "|---|---|---|---:|---:|"]
    for s in plan.scenarios:
        what = s.kind if s.kind == "backup" else f"{s.kind} ({s.fault} {MEMBER[s.service]})"
        lines.append(f"| {s.service} | {what} | `{s.command}` | {s.objectives['rto_s']:g} s | "
                     f"{s.objectives['rpo_s']:g} s |")
    for s in plan.scenarios:
        lines += ["", f"## {s.service}: {s.kind}", "", "What to watch:", ""] + [f"- {w}" for w in s.watch]
    lines += ["", "Run the quarter in one go: `backbone drill run --plan PLAN.json` (this plan as JSON)."]
    return "\n".join(lines) + "\n"


def load_plan(path: Path) -> QuarterPlan:
    """A plan written by `drill plan --format json` (for `drill run --plan`)."""
    try:
        data = json.loads(path.read_text())
        data.pop("label", None)
        scenarios = [Scenario(**s) for s in data.pop("scenarios")]
        plan = QuarterPlan(**data, scenarios=scenarios)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a drill plan written by `backbone drill plan --format json` "
                          f"({type(exc).__name__})") from None
    unknown = [f"{s.service}/{s.kind}" for s in plan.scenarios if (s.service, s.kind) not in WATCH]
    if unknown:
        raise ConfigError(f"{path}: unknown scenario(s) {', '.join(unknown)}")
    return plan
