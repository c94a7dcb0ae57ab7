"""The result every readiness check returns, and how results combine into one verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

OK, DEGRADED, DOWN = "ok", "degraded", "down"
_RANK = {OK: 0, DEGRADED: 1, DOWN: 2}


@dataclass
class CheckResult:
    name: str
    status: str  # ok | degraded | down
    code: str  # stable, for machines: ok, timescaledb_missing, auth_failed, unreachable, timeout, ...
    message: str  # one sentence, for people
    latency_ms: float | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == OK

    @property
    def failed(self) -> bool:
        return self.status == DOWN

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "code": self.code, "message": self.message,
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
                "error": self.error, "details": self.details}


def judged(name: str, summary: str, problems: list[tuple[str, str]], latency_ms: float, details: dict,
           status_if_problems: str = DEGRADED) -> CheckResult:
    """A probe's verdict: ok with its summary, or the first problem's code and every reason."""
    if not problems:
        return CheckResult(name, OK, "ok", f"{summary}.", latency_ms=latency_ms, details=details)
    return CheckResult(name, status_if_problems, problems[0][0],
                       f"{summary}, but " + "; ".join(reason for _, reason in problems) + ".",
                       latency_ms=latency_ms, details=details | {"problems": [code for code, _ in problems]})


def worst(statuses: list[str]) -> str:
    return max(statuses, key=_RANK.__getitem__, default=OK)


Check = Callable[[], CheckResult]
