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
    # -> REFUSED | LET_IN | NOT_TRIED, or (NOT_TRIED, why) with a fixed phrase saying why
    run: Callable[[], "str | tuple[str, str]"]
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


def run_attempts(attempts: list[Attempt], timeout_s: float, why: dict[str, str] | None = None) -> dict[str, str]:
    """code -> outcome, every attempt on its own daemon thread (a hung driver cannot hold the
    exit); one not finished by `timeout_s` is refused, or not tried when it is an insider's.
    `why` receives, for each attempt not tried, a fixed phrase saying why."""
    outcomes: dict[str, str] = {}
    why = {} if why is None else why

    def run(a: Attempt) -> None:
        try:
            found = a.run()
        except Exception as exc:  # a driver's surprise proves nothing either way  # noqa: BLE001
            found = (NOT_TRIED, f"unexpected {type(exc).__name__}")
        if isinstance(found, tuple):
            found, why[a.code] = found
        outcomes[a.code] = found

    threads = [threading.Thread(target=run, args=(a,), daemon=True, name=f"exposure-{a.code}") for a in attempts]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, timeout_s - (time.monotonic() - started)))
    done = {a.code: outcomes.get(a.code, NOT_TRIED if a.insider else REFUSED) for a in attempts}
    for a in attempts:
        if a.code not in outcomes and a.insider:
            why[a.code] = f"no answer within {timeout_s:g} s"
    return done


def exposure_check(service: str, ep, timeout_s: float) -> CheckResult:
    name, label = f"exposure.{service}", SERVICE_NAMES[service]
    started = time.perf_counter()
    attempts = attempts_for(service, ep, timeout_s * ATTEMPT_SHARE)
    why: dict[str, str] = {}
    outcomes = run_attempts(attempts, timeout_s, why)
    return judge(name, label, attempts, outcomes, (time.perf_counter() - started) * 1000, why)


def judge(name: str, label: str, attempts: list[Attempt], outcomes: dict[str, str],
          latency_ms: float, why: dict[str, str] | None = None) -> CheckResult:
    """Pure: the outcomes -> down if anything was let in, degraded if something could not be
    tried, else ok."""
    by = {o: [a for a in attempts if outcomes[a.code] == o] for o in (REFUSED, LET_IN, NOT_TRIED)}
    details: dict = {o: [a.code for a in found] for o, found in by.items()}
    if by[NOT_TRIED]:
        details["why_not_tried"] = {a.code: (why or {}).get(a.code, "could not connect") for a in by[NOT_TRIED]}
    if by[LET_IN]:
        return CheckResult(name, DOWN, "let_in", f"{label} lets an outsider in: "
                           + "; ".join(a.what for a in by[LET_IN]) + " got in.",
                           latency_ms=latency_ms, details=details)
    if by[NOT_TRIED]:
        return CheckResult(name, DEGRADED, "not_tried",
                           f"{label} refused {len(by[REFUSED])} of {len(attempts)} attempts; could not try "
                           + "; ".join(f"{a.what} ({details['why_not_tried'][a.code]})" for a in by[NOT_TRIED]) + ".",
                           latency_ms=latency_ms, details=details)
    return CheckResult(name, OK, "ok", f"{label} refused all {len(attempts)} attempts: "
                       + "; ".join(a.what for a in attempts) + ".", latency_ms=latency_ms, details=details)
