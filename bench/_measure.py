"""What every bench script measures of itself: peak RSS, CPU seconds, percentiles, and a
progress line on stderr."""
from __future__ import annotations

import resource
import sys


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds of this process, librdkafka's threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def progress(text: str) -> None:
    print(f"\r{text}   ", end="", file=sys.stderr, flush=True)
