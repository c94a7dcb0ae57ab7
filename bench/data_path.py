"""Benchmark (not a test): the data path against the raw client libraries, in one run, on
the same rows and the same hypertable.

    .venv/bin/backbone local up
    .venv/bin/python bench/data_path.py .backbone/local/outputs.json [--rows 100000] [--rounds 3]

Prints, with peak RSS:
- upsert of new rows (backbone: validation, range probe, binary COPY) and of rows that
  all exist with changed values (COPY into a temp table + INSERT ... ON CONFLICT) against
  raw psycopg binary COPY (no conflict handling: the physical floor) and raw `executemany`
  of INSERT ... ON CONFLICT DO UPDATE on the same kind of rows, the order alternating by
  round;
- a cache hit (`bb.latest_bars`, 5 symbols) against a raw redis-py GET of the same payload;
- the bootstrap tier's upsert rows/s (embedded SQLite, WAL).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from backbone.clients.redis import redis_client
from backbone.contract import Sources, load_contract
from backbone.data import open_backbone
from backbone.data.rows import Bar
from backbone.clients.timescale import libpq_url

COLS = ("symbol", "ts", "open", "high", "low", "close", "volume", "source")
TYPES = ["text", "timestamptz", "float8", "float8", "float8", "float8", "int8", "text"]


def bars(n: int, tag: str, bump: float = 0.0) -> list[Bar]:
    """n bars over 50 symbols of a run-unique prefix, daily from 2000-01-03."""
    start = dt.datetime(2000, 1, 3, tzinfo=dt.timezone.utc)
    return [Bar(f"{tag}{i % 50:02d}", start + dt.timedelta(days=i // 50), 10.0 + bump, 11.0 + bump, 9.0,
                10.5, 1000 + i, "bench") for i in range(n)]


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def raw_copy(dsn: str, rows: list[Bar]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor().copy(
            f"COPY daily_bars ({', '.join(COLS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(TYPES)
        for r in rows:
            copy.write_row((r.symbol, r.ts, r.open, r.high, r.low, r.close, r.volume, r.source))


def raw_executemany(dsn: str, rows: list[Bar]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO daily_bars ({', '.join(COLS)}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (symbol, ts) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, "
            "close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source",
            [(r.symbol, r.ts, r.open, r.high, r.low, r.close, r.volume, r.source) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    contract = load_contract(Sources(outputs=args.outputs, environ={}))
    dsn, n = libpq_url(contract.timescale), args.rows
    names = ("raw COPY", "upsert", "raw executemany ON CONFLICT")
    times: dict[tuple[str, str], list[float]] = {(w, k): [] for w in ("new", "changed") for k in names}
    with open_backbone(contract) as bb:
        # warm-up: the hypertable's chunks for this date range exist before anything is timed
        raw_copy(dsn, bars(n, f"W{int(time.time()) % 100000:05d}"))
        small = min(n, 20_000)  # executemany is slow: timed on a fifth of the rows, scaled
        for i in range(args.rounds):
            tag = f"{int(time.time() * 10) % 100000:05d}"
            runs = [
                (("new", "raw COPY"), lambda: raw_copy(dsn, bars(n, "R" + tag)), 1),
                (("new", "upsert"), lambda: bb.upsert("bars", bars(n, "U" + tag)), 1),
                (("new", "raw executemany ON CONFLICT"), lambda: raw_executemany(dsn, bars(small, "E" + tag)), n / small),
            ]
            if i % 2:
                runs.reverse()  # neither side always goes first
            for key, fn, scale in runs:  # each builds its rows inside; that cost is subtracted below
                times[key].append(timed(fn) * scale)
            changed = [(("changed", "upsert"), lambda: bb.upsert("bars", bars(n, "U" + tag, bump=0.25)), 1),
                       (("changed", "raw executemany ON CONFLICT"),
                        lambda: raw_executemany(dsn, bars(small, "E" + tag, bump=0.25)), n / small)]
            for key, fn, scale in changed if i % 2 else reversed(changed):
                times[key].append(timed(fn) * scale)
            print(f"\rround {i + 1}/{args.rounds}", end="", flush=True)
        print()
        build = statistics.median([timed(lambda: bars(n, "Z")) for _ in range(3)])  # the rows' own cost
        floor = statistics.median(times[("new", "raw COPY")]) - build
        print(f"Timescale, {n} rows per run (medians of {args.rounds}; the rows' construction, "
              f"{build * 1000:.0f} ms, subtracted)")
        print(f"{'':<14}{'path':<30}{'rows/s':>12}{'vs raw COPY':>13}{'vs executemany':>16}")
        for which in ("new", "changed"):
            many = statistics.median(times[(which, "raw executemany ON CONFLICT")]) - build
            for name in names:
                if not times[(which, name)]:
                    continue  # raw COPY cannot update rows
                med = statistics.median(times[(which, name)]) - build
                print(f"{which + ' rows':<14}{name:<30}{n / med:>12,.0f}{floor / med:>12.2f}x{many / med:>15.2f}x")

        # cache hit against a raw GET of the same payload (the entry's own bytes, the newest in the
        # index) with a client made as the data API makes its own (bench/cache_hit.py: p50/p99, rounds)
        symbols = [f"U{tag}{i:02d}" for i in range(5)]
        bb.latest_bars(symbols)  # fill
        client = redis_client(contract.redis, 0.5)
        payload = client.get(client.zrange(f"{contract.redis.cache_policy.namespace}:index", -1, -1)[0])
        assert len(json.loads(payload)) == len(bb.latest_bars(symbols).rows)
        client.set(f"{contract.redis.cache_policy.namespace}:bench:raw", payload)
        hit, raw = [], []
        for _ in range(2000):
            hit.append(timed(lambda: bb.latest_bars(symbols)))
            raw.append(timed(lambda: client.get(f"{contract.redis.cache_policy.namespace}:bench:raw")))
        assert bb.latest_bars(symbols).hit
        h, r = statistics.median(hit), statistics.median(raw)
        print(f"cache hit (latest bars, 5 symbols): {h * 1e6:7.0f} us; raw GET of the same {len(payload)} bytes: "
              f"{r * 1e6:5.0f} us; ratio {h / r:.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        import subprocess
        import sys
        extra = ("--extra", f"BACKBONE_BOOTSTRAP_STORE={tmp}/bench.db")
        subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply", *extra], check=True, capture_output=True)
        boot = load_contract(Sources(environ={}, extras=(extra[1],)))
        with open_backbone(boot) as bb:
            rows = bars(n, "BOOT")
            new = timed(lambda: bb.upsert("bars", rows))
            again = timed(lambda: bb.upsert("bars", bars(n, "BOOT", bump=0.25)))
        print(f"bootstrap upsert: new rows {n / new:,.0f} rows/s, changed rows {n / again:,.0f} rows/s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
