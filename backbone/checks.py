"""Check results and the concurrent runner that bounds every check by a deadline."""
from __future__ import annotations

import threading
import time
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


def run_concurrently(checks: dict[str, Check], deadline_s: float) -> list[CheckResult]:
    """Run every check on its own daemon thread; whatever has not answered by the
    deadline is reported down. Daemon threads, so a hung driver cannot hold the exit."""
    results: dict[str, CheckResult] = {}
    started = time.monotonic()

    def run(name: str, check: Check) -> None:
        try:
            results[name] = check()
        except Exception as exc:  # a probe bug must still produce a result, not a traceback
            results[name] = CheckResult(name, DOWN, "probe_error", f"{name} check raised {type(exc).__name__}",
                                        error=str(exc))

    threads = {name: threading.Thread(target=run, args=(name, c), daemon=True, name=f"check-{name}")
               for name, c in checks.items()}
    for t in threads.values():
        t.start()
    for t in threads.values():
        t.join(max(0.0, deadline_s - (time.monotonic() - started)))
    out = []
    for name in checks:
        if name in results:
            out.append(results[name])
        else:
            out.append(CheckResult(name, DOWN, "timeout", f"{name} did not answer within {deadline_s:g} s",
                                   latency_ms=(time.monotonic() - started) * 1000))
    return out
