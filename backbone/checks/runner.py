"""The concurrent runner that bounds every check by one deadline."""
from __future__ import annotations

import threading
import time

from .result import DOWN, Check, CheckResult


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
