"""Benchmark (not a test): the CLI as whole processes against a raw-client script.

In one run, interleaved (the order rotates every round), the median wall time of
`backbone --version`, `backbone probe` and `backbone validate` on a healthy environment,
and of `bench/raw_round_trips.py` (psycopg SELECT 1, redis-py PING, Kafka metadata and a
produce -> consume canary: the round trips the probes make, and nothing else), with the
ratios against the raw script.

    .venv/bin/backbone local up
    .venv/bin/python bench/cli_start.py .backbone/local/outputs.json [--rounds 15]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def backbone_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("backbone")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "backbone"]


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}; the environment must be healthy:\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    bb = backbone_cmd()
    src = ["--outputs", str(args.outputs)]
    commands = {
        "backbone --version": bb + ["--version"],
        "backbone probe": bb + ["probe", *src],
        "backbone validate": bb + ["validate", *src],
        "raw clients": [sys.executable, str(HERE / "raw_round_trips.py"), str(args.outputs)],
    }
    for cmd in commands.values():  # warm-up: page cache, the canary topic, the consumer group
        timed(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for i in range(args.rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(timed(commands[name]))
        print(f"\rround {i + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    raw = statistics.median(times["raw clients"])
    print(f"{'command':<22}{'median':>10}{'best':>10}{'vs raw':>9}   ({args.rounds} rounds, {os.cpu_count()} cores)")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<22}{med * 1000:>8.0f} ms{min(values) * 1000:>7.0f} ms{med / raw:>8.2f}x")


if __name__ == "__main__":
    main()
