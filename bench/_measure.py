"""What every bench script measures of itself: peak RSS, CPU seconds, percentiles, and a
progress line on stderr; and the local environment a bench runs against."""
from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator


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


def backbone_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("backbone")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "backbone"]


@contextlib.contextmanager
def local_environment(outputs: Path | None, *up_args: str) -> Iterator[Path]:
    """The given outputs contract, or a fresh `backbone local up *up_args` in a temp dir,
    always taken down afterwards."""
    if outputs is not None:
        yield outputs
        return
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        state = ["--state-dir", tmp]
        print(f"starting a local environment {' '.join(up_args)} in {tmp} ...", file=sys.stderr, flush=True)
        up = subprocess.run(backbone_cmd() + ["local", "up", *up_args, *state], capture_output=True, text=True)
        try:
            if up.returncode != 0:
                raise SystemExit(f"backbone local up failed ({up.returncode}):\n{up.stdout}{up.stderr}")
            yield Path(tmp) / "outputs.json"
        finally:
            subprocess.run(backbone_cmd() + ["local", "down", *state], capture_output=True)
