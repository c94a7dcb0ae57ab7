"""Benchmark (not a test): what TLS and authentication cost, side by side. The same four
measurements on a secure local environment (`local up`: TLS, SCRAM, ACLs, roles by duty) and
on an `--insecure` one (plaintext, the old single accounts), interleaved round by round:

- ingest: `backbone ingest --file` of a fresh bars CSV (rows/s, process start-up included);
- relay: `Relay.drain()` of N fresh outbox events to the events topic (msgs/s);
- cache hit: `latest_bars` of 5 symbols answered from Redis (median microseconds);
- validate: the checks of `backbone validate` both environments run alike, concurrently
  (median wall ms), and every check including the `tls` and `exposure` ones, which on an
  --insecure environment return at once.

    .venv/bin/python bench/tls_cost.py [--secure OUT --insecure OUT] [--rows 200000]

Without outputs it starts both environments (3 KRaft nodes each) and takes them down after.
The goal (issue 23): each cost within 15%.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _events_helpers as h  # noqa: E402 (a sibling: bench scripts run from bench/)
from _measure import backbone_cmd, local_environment, progress, rss_mib  # noqa: E402

from backbone.checks import run_concurrently  # noqa: E402
from backbone.cli.checks import plan_checks  # noqa: E402
from backbone.clients import timescale as timescale_client  # noqa: E402
from backbone.contract.sources import Sources, load_contract  # noqa: E402
from backbone.data import open_backbone  # noqa: E402
from backbone.data.rows import Bar  # noqa: E402
from backbone.events.relay import Relay  # noqa: E402

GOAL = 0.15
SIDES = ("insecure", "secure")


def write_bars(path: Path, rows: int, tag: str) -> None:
    """`rows` daily bars over 100 symbols named after `tag` (a fresh set every round)."""
    start = dt.date(1990, 1, 1)
    per = rows // 100
    with path.open("w") as f:
        f.write("symbol,ts,open,high,low,close,volume,source\n")
        for s in range(100):
            for d in range(per):
                day = start + dt.timedelta(days=d)
                f.write(f"{tag}{s:03d},{day.isoformat()}T00:00:00Z,10.0,11.0,9.0,10.5,{1000 + d},bench\n")


def ingest(outputs: Path, work: Path, rows: int, tag: str) -> float:
    path = work / f"{tag}.csv"
    write_bars(path, rows, tag)
    started = time.perf_counter()
    done = subprocess.run(backbone_cmd() + ["ingest", "--outputs", str(outputs), "--dimension", "bars",
                                            "--file", str(path), "--format", "json"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    path.unlink()
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return rows / seconds


def relay(contract, n: int, tag: str) -> float:
    with timescale_client.connect(contract.timescale, 30, autocommit=True) as conn:
        after = h.fill_outbox(conn, n, tag)
        conn.execute("ANALYZE outbox")
        r = Relay(contract)
        try:
            h.warm(r.producer, r.topic)
            started = time.perf_counter()
            published = r.drain()
            seconds = time.perf_counter() - started
        finally:
            r.close()
        h.clear_outbox(conn, after)
    if published < n:
        raise SystemExit(f"the relay published {published} of {n}")
    return n / seconds


def cache_hit(contract, samples: int, tag: str) -> float:
    symbols = [f"{tag}{i}" for i in range(5)]
    day = dt.datetime(2000, 1, 3, tzinfo=dt.timezone.utc)
    with open_backbone(contract) as bb:
        bb.upsert("bars", [Bar(s, day, 10.0, 11.0, 9.0, 10.5, 1000, "bench") for s in symbols])
        bb.latest_bars(symbols)  # the fill
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            got = bb.latest_bars(symbols)
            times.append(time.perf_counter() - started)
            if not got.hit:
                raise SystemExit("a cache read missed during the timed loop")
    return statistics.median(times) * 1e6


def validate(contract, timeout_s: float = 30, security: bool = True) -> float:
    """`validate`'s wall time in ms: every check, or (security=False) the checks both
    environments run alike, without the tls and exposure checks (plaintext: they return at
    once; secure: they make every handshake and attempt for real)."""
    checks = plan_checks(contract, "validate", timeout_s)
    if not security:
        checks = {n: c for n, c in checks.items() if not n.startswith(("tls.", "exposure."))}
    started = time.perf_counter()
    results = run_concurrently(checks, deadline_s=timeout_s + 2)
    took = time.perf_counter() - started
    # an --insecure environment's exposure checks are down by design (everything is let in)
    insecure = contract.timescale.ca_pem is None
    bad = [f"{r.name}: {r.status}" for r in results
           if r.status == "down" and not (insecure and r.name.startswith("exposure."))]
    if bad:
        raise SystemExit(f"validate found checks down: {', '.join(bad)}")
    return took * 1000


METRICS = {  # name: (unit, higher is better)
    "ingest rows/s": ("rows/s", True),
    "relay msgs/s": ("msgs/s", True),
    "cache hit p50": ("us", False),
    "validate wall, same checks": ("ms", False),
    "validate wall, all checks": ("ms", False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secure", type=Path, help="a secure environment's outputs.json (default: start one)")
    parser.add_argument("--insecure", type=Path, help="an --insecure environment's outputs.json (default: start one)")
    parser.add_argument("--rows", type=int, default=200_000, help="bars per ingest (default 200k)")
    parser.add_argument("--events", type=int, default=20_000, help="outbox events per relay run (default 20k)")
    parser.add_argument("--samples", type=int, default=2000, help="cache hits timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start", file=sys.stderr)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        outputs = {"secure": stack.enter_context(local_environment(args.secure, "--kafka-brokers", "3")),
                   "insecure": stack.enter_context(local_environment(args.insecure, "--kafka-brokers", "3",
                                                                     "--insecure"))}
        contracts = {side: load_contract(Sources(outputs=outputs[side], environ={})) for side in SIDES}
        for side in SIDES:
            if (contracts[side].timescale.ca_pem is None) != (side == "insecure"):
                raise SystemExit(f"the {side} environment's contract is not {side}")
        results: dict[str, dict[str, list[float]]] = {m: {s: [] for s in SIDES} for m in METRICS}
        stamp = int(time.time()) % 100_000
        for r in range(args.rounds + 1):  # round 0 warms both sides up and is not counted
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for side in order:
                progress(f"round {r}/{args.rounds}: {side}")
                c, tag = contracts[side], f"T{stamp}{r}{side[0].upper()}"
                got = {"ingest rows/s": ingest(outputs[side], Path(tmp), args.rows, tag),
                       "relay msgs/s": relay(c, args.events, tag),
                       "cache hit p50": cache_hit(c, args.samples, tag),
                       "validate wall, same checks": validate(c, security=False),
                       "validate wall, all checks": validate(c)}
                if r:
                    for m, v in got.items():
                        results[m][side].append(v)
        print(f"\n\nTLS + authentication cost, medians of {args.rounds} interleaved rounds "
              f"(load average {os.getloadavg()[0]:.2f} at the end, peak RSS {rss_mib():.0f} MiB)\n")
        print("| measure | --insecure | secure | cost | goal <= 15% |\n|---|---:|---:|---:|---|")
        failures = 0
        for m, (unit, higher) in METRICS.items():
            plain, tls = (statistics.median(results[m][s]) for s in SIDES)
            cost = (plain / tls - 1) if higher else (tls / plain - 1)
            failures += cost > GOAL
            print(f"| {m} | {plain:,.1f} {unit} | {tls:,.1f} {unit} | {cost:+.1%} | "
                  f"{'met' if cost <= GOAL else 'NOT met'} |")
        print(f"\n{'every cost within 15%' if not failures else f'{failures} cost(s) above 15%'}")


if __name__ == "__main__":
    main()
