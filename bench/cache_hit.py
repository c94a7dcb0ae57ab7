"""Benchmark (not a test): a query-cache hit against a raw redis-py GET of the same payload,
in one run, interleaved.

    .venv/bin/python bench/cache_hit.py [--outputs .backbone/local/outputs.json] [--rounds 3] [--n 5000]

Without --outputs it starts its own `backbone local up` (single node) in a temp dir and takes
it down afterwards.

- The hit: `bb.latest_bars(5 symbols)` and `bb.bars(1 symbol, a window of --window-rows
  daily bars)`, the public reads, typed rows returned (the cache's generation check and
  value in one round trip, the decoded value reused while the entry's bytes are unchanged).
- The raw GET: the exact bytes of the entry the hit reads (taken from Redis, the newest
  member of the namespace's index), stored under a bench key, read with a redis-py client
  made the way the data API makes its own (`clients.redis.redis_client(contract.redis,
  0.5)`: same URL, timeouts and retry settings; its own connection).
- Per sample the two alternate which goes first; --n samples per round, --rounds rounds.
  Prints per payload the medians and p50/p99 of both, the ratio of the medians per round
  and its median over rounds (the goal: <= 1.5x), and peak RSS.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from _measure import pct, progress, rss_mib

from backbone.clients.redis import redis_client
from backbone.contract import Sources, load_contract
from backbone.data import open_backbone
from backbone.data.rows import Bar

GOAL = 1.5


@contextlib.contextmanager
def environment(outputs: Path | None) -> Iterator[Path]:
    if outputs is not None:
        yield outputs
        return
    exe = Path(sys.executable).with_name("backbone")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "backbone"]
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        state = ["--state-dir", tmp]
        print(f"starting a local environment in {tmp} ...", file=sys.stderr, flush=True)
        up = subprocess.run(cmd + ["local", "up", *state], capture_output=True, text=True)
        try:
            if up.returncode != 0:
                raise SystemExit(f"backbone local up failed ({up.returncode}):\n{up.stdout}{up.stderr}")
            yield Path(tmp) / "outputs.json"
        finally:
            subprocess.run(cmd + ["local", "down", *state], capture_output=True)


def interleaved(hit: Callable[[], object], raw: Callable[[], object], n: int) -> tuple[list[float], list[float]]:
    clock, hits, raws = time.perf_counter, [], []
    for i in range(n):
        for which in ((hit, hits), (raw, raws)) if i % 2 else ((raw, raws), (hit, hits)):
            started = clock()
            which[0]()
            which[1].append(clock() - started)
    return hits, raws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000, help="samples of each per round")
    parser.add_argument("--window-rows", type=int, default=1000)
    args = parser.parse_args()
    with environment(args.outputs) as outputs:
        contract = load_contract(Sources(outputs=outputs, environ={}))
        index = f"{contract.redis.cache_policy.namespace}:index"
        raw_client = redis_client(contract.redis, 0.5)
        tag = f"CH{int(time.time() * 10) % 100000:05d}"
        start = dt.datetime(2000, 1, 3, tzinfo=dt.timezone.utc)
        with open_backbone(contract) as bb:
            symbols = [f"{tag}{i}" for i in range(5)]
            days = args.window_rows
            bb.upsert("bars", [Bar(s, start + dt.timedelta(days=d), 10.0, 11.0, 9.0, 10.5, 1000 + d, "bench")
                               for s in symbols for d in range(days if s == symbols[0] else 1)])
            end = start + dt.timedelta(days=days)
            reads = {"latest_bars, 5 symbols": lambda: bb.latest_bars(symbols),
                     f"bars, 1 symbol x {days} days": lambda: bb.bars(symbols[:1], start, end)}
            print(f"{'read':<28}{'bytes':>8}{'hit p50':>10}{'p99':>8}{'GET p50':>10}{'p99':>8}"
                  f"{'ratio per round':>26}{'median':>9}")
            for name, read in reads.items():
                assert not read().hit  # the fill
                payload = raw_client.get(raw_client.zrange(index, -1, -1)[0])  # the entry just written
                assert read().hit and len(json.loads(payload)) == len(read().rows)
                raw_client.set(f"{contract.redis.cache_policy.namespace}:bench:raw:{tag}", payload)
                raw = lambda: raw_client.get(f"{contract.redis.cache_policy.namespace}:bench:raw:{tag}")  # noqa: E731
                interleaved(read, raw, 500)  # warm-up
                hits: list[float] = []
                raws: list[float] = []
                ratios = []
                for r in range(args.rounds):
                    progress(f"{name}: round {r + 1}/{args.rounds}")
                    h, g = interleaved(read, raw, args.n)
                    ratios.append(statistics.median(h) / statistics.median(g))
                    hits += h
                    raws += g
                assert read().hit
                print(f"\r{name:<28}{len(payload):>8}{pct(hits, 50) * 1e6:>8.0f}us{pct(hits, 99) * 1e6:>6.0f}us"
                      f"{pct(raws, 50) * 1e6:>8.0f}us{pct(raws, 99) * 1e6:>6.0f}us"
                      f"{' '.join(f'{x:.2f}x' for x in ratios):>26}{statistics.median(ratios):>8.2f}x")
                raw_client.delete(f"{contract.redis.cache_policy.namespace}:bench:raw:{tag}")
        print(f"goal: a hit <= {GOAL}x a raw GET of the same payload (latest_bars, 5 symbols); "
              f"peak RSS {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
