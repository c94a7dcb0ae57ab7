"""The `exposure` readiness check: what an outsider would try against a service — a
plaintext connection, no credentials, wrong credentials, the application's own user running
an administrator's command — each attempt for real, all at once, under the check's deadline.
Any attempt let in makes the check down, naming which (by code: never a secret, never the
driver's text); an attempt that needs the contract's own account and could not make its
connection is "not tried" (degraded: the service probes say why).

Each service module (`timescale`, `redis`, `kafka`) lists its attempts; an attempt returns
REFUSED, LET_IN or NOT_TRIED and handles its driver's errors itself."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..checks import DEGRADED, DOWN, OK, CheckResult

REFUSED, LET_IN, NOT_TRIED = "refused", "let_in", "not_tried"
ATTEMPT_SHARE = 0.8  # of the check's timeout, for each attempt's own client timeouts
SERVICE_NAMES = {"timescale": "PostgreSQL", "redis": "Redis", "kafka": "Kafka"}


@dataclass(frozen=True)
class Attempt:
    code: str  # stable, for machines: plaintext, anonymous, wrong_password, app_admin, sentinel_anonymous
    what: str  # for people: "a plaintext connection"
    run: Callable[[], str]  # -> REFUSED | LET_IN | NOT_TRIED
    # an attempt that uses the contract's own account: when it has not answered by the
    # deadline nothing was proved (not tried); an outsider left hanging was refused
    insider: bool = False


def attempts_for(service: str, ep, timeout_s: float) -> list[Attempt]:
    if service == "timescale":
        from .timescale import attempts
    elif service == "redis":
        from .redis import attempts
    else:
        from .kafka import attempts
    return attempts(ep, timeout_s)


def run_attempts(attempts: list[Attempt], timeout_s: float) -> dict[str, str]:
    """code -> outcome, every attempt on its own daemon thread (a hung driver cannot hold the
    exit); one not finished by `timeout_s` is refused, or not tried when it is an insider's."""
    outcomes: dict[str, str] = {}

    def run(a: Attempt) -> None:
        try:
            outcomes[a.code] = a.run()
        except Exception:  # a driver's surprise proves nothing either way  # noqa: BLE001
            outcomes[a.code] = NOT_TRIED

    threads = [threading.Thread(target=run, args=(a,), daemon=True, name=f"exposure-{a.code}") for a in attempts]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, timeout_s - (time.monotonic() - started)))
    return {a.code: outcomes.get(a.code, NOT_TRIED if a.insider else REFUSED) for a in attempts}


def exposure_check(service: str, ep, timeout_s: float) -> CheckResult:
    name, label = f"exposure.{service}", SERVICE_NAMES[service]
    started = time.perf_counter()
    attempts = attempts_for(service, ep, timeout_s * ATTEMPT_SHARE)
    outcomes = run_attempts(attempts, timeout_s)
    return judge(name, label, attempts, outcomes, (time.perf_counter() - started) * 1000)


def judge(name: str, label: str, attempts: list[Attempt], outcomes: dict[str, str],
          latency_ms: float) -> CheckResult:
    """Pure: the outcomes -> down if anything was let in, degraded if something could not be
    tried, else ok."""
    by = {o: [a for a in attempts if outcomes[a.code] == o] for o in (REFUSED, LET_IN, NOT_TRIED)}
    details = {o: [a.code for a in found] for o, found in by.items()}
    if by[LET_IN]:
        return CheckResult(name, DOWN, "let_in", f"{label} lets an outsider in: "
                           + "; ".join(a.what for a in by[LET_IN]) + " got in.",
                           latency_ms=latency_ms, details=details)
    if by[NOT_TRIED]:
        return CheckResult(name, DEGRADED, "not_tried",
                           f"{label} refused {len(by[REFUSED])} of {len(attempts)} attempts; could not try "
                           + "; ".join(a.what for a in by[NOT_TRIED]) + " (the contract's own account did not connect).",
                           latency_ms=latency_ms, details=details)
    return CheckResult(name, OK, "ok", f"{label} refused all {len(attempts)} attempts: "
                       + "; ".join(a.what for a in attempts) + ".", latency_ms=latency_ms, details=details)
