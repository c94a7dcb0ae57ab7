"""Benchmark (not a test): tier-switch verification (`backbone.tier.verify`) on N bars + N
trades held by both tiers, against a raw read of the same rows in the same run.

    .venv/bin/python bench/tier_verify.py [--outputs .backbone/local/outputs.json] [--rows 1000000] [--rounds 3]

Without --outputs it starts its own environment (`backbone local up --state-dir <tmp>`) and
stops it at the end. The rows go to a new bootstrap store (executemany, one transaction per
batch) and to a new TimescaleDB database (binary COPY), both migrated by `migrate apply`;
the database is dropped at the end. Prints, per round and as medians:
- verify(): rows/s (source rows, both tables, per second of wall time), equal or not;
- raw: `SELECT count(*)` and every row of both sides read with the raw drivers (sqlite3
  fetchmany; a psycopg server-side cursor), no hashing, one side after the other, and
  "raw together": the same with TimescaleDB read in a thread meanwhile, as verify() does;
- the ratio verify / raw (time), this process's CPU seconds per run (the machine may be
  shared: wall time alone can mislead), and peak RSS (everything is streamed in batches);
- then with every bar deleted from TimescaleDB: N mismatches listed (a file), per second,
  and the peak RSS before and after (flat: the listing is streamed, not held).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _events_helpers as h  # noqa: E402
import _measure as measure  # noqa: E402

from backbone.clients.timescale import libpq_url  # noqa: E402
from backbone.contract import Contract, merge_outputs  # noqa: E402
from backbone.data.store_sqlite import to_text  # noqa: E402
from backbone.tier.tables import TABLES  # noqa: E402
from backbone.tier.verify import verify  # noqa: E402

BATCH = 50_000
BACKBONE = [sys.executable, "-m", "backbone"]
PG_TYPES = {"ts": "timestamptz", "float": "float8", "int": "int8", "text": "text"}


def run(*args: str) -> None:
    done = subprocess.run([*BACKBONE, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"backbone {' '.join(args)} failed:\n{done.stderr}")


def bars(n: int, rnd: random.Random):
    """Symbol by symbol (as vendors deliver history), a bar a day from 2000-01-03."""
    days = n // max(1, n // 1000)  # 1,000 symbols of 1,000 days for a million
    start = dt.datetime(2000, 1, 3, tzinfo=dt.timezone.utc)
    for i in range(n):
        price = rnd.uniform(1, 500)
        yield (f"S{i // days:04d}", start + dt.timedelta(days=i % days), price, price * 1.01, price * 0.99,
               price * 1.001, rnd.randrange(10 ** 7), "bench")


def trades(n: int, rnd: random.Random):
    """200 symbols over 30 days, microsecond timestamps, some NULL exchange and side."""
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(n):
        yield (f"X{i % 200:03d}", start + dt.timedelta(microseconds=rnd.randrange(30 * 86_400_000_000)), f"T{i}",
               rnd.uniform(1, 500), rnd.uniform(0.001, 100), rnd.choice(["XNAS", None]), "bench",
               rnd.choice(["buy", "sell", None]))


def fill(store: Path, dsn: str, rows: int) -> None:
    lite = sqlite3.connect(store, isolation_level=None)
    rnd = random.Random(7)
    with psycopg.connect(dsn) as pg:
        for table, gen in (("daily_bars", bars), ("intraday_trades", trades)):
            t = TABLES[table]
            ts_at = t.columns.index(t.time)
            started = time.perf_counter()
            with pg.cursor().copy(f"COPY {table} ({', '.join(t.columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([PG_TYPES[k] for k in t.kinds])
                batch = []
                for row in gen(rows, rnd):
                    copy.write_row(row)
                    batch.append(row[:ts_at] + (to_text(row[ts_at]),) + row[ts_at + 1:])
                    if len(batch) == BATCH:
                        _lite_batch(lite, t, batch)
                        batch = []
                _lite_batch(lite, t, batch)
            pg.commit()
            print(f"filled {table}: {rows:,} rows on both sides in {time.perf_counter() - started:.1f} s")
        pg.execute("ANALYZE daily_bars")
        pg.execute("ANALYZE intraday_trades")
        pg.commit()
    lite.close()


def _lite_batch(lite: sqlite3.Connection, t, batch: list[tuple]) -> None:
    lite.execute("BEGIN")
    lite.executemany(f"INSERT INTO {t.name} ({', '.join(t.columns)}) VALUES ({', '.join('?' * len(t.columns))})",
                     batch)
    lite.execute("COMMIT")


def raw(store: Path, dsn: str, tables: list[str], together: bool = False) -> tuple[float, int]:
    """count(*) and every row of both sides with the raw drivers, no hashing; one side after
    the other, or `together` (TimescaleDB in a thread, as verify() reads)."""
    started, n = time.perf_counter(), 0

    def target() -> None:
        with psycopg.connect(dsn) as pg:
            for table in tables:
                pg.execute(f"SELECT count(*) FROM {table}").fetchone()
                with pg.cursor(name="raw") as cur:
                    cur.itersize = 10_000
                    cur.execute(f"SELECT {', '.join(TABLES[table].columns)} FROM {table}")
                    for _ in cur:
                        pass

    thread = threading.Thread(target=target) if together else None
    if thread:
        thread.start()
    lite = sqlite3.connect(store)
    for table in tables:
        lite.execute(f"SELECT count(*) FROM {table}").fetchone()
        cur = lite.execute(f"SELECT {', '.join(TABLES[table].columns)} FROM {table}")
        while rows := cur.fetchmany(10_000):
            n += len(rows)
    lite.close()
    if thread:
        thread.join()
    else:
        target()
    return time.perf_counter() - started, n


def bench(outputs: Path, rows: int, rounds: int, work: Path) -> None:
    doc = json.loads(outputs.read_text())
    base = Contract.model_validate(merge_outputs(doc)).timescale
    database = "bench_verify_" + uuid.uuid4().hex[:8]
    h.create_scratch_database(base, database)
    try:
        doc["backbone"]["timescale"] = {**doc["backbone"]["timescale"], "database": database}
        target = work / "institutional.json"
        target.write_text(json.dumps(doc))
        store = work / "bootstrap" / "backbone.db"
        source = work / "bootstrap.json"
        source.write_text(json.dumps({"contract_version": 1, "tier": "bootstrap", "bootstrap": {"store": str(store)}}))
        run("migrate", "apply", "--outputs", str(source))
        run("migrate", "apply", "--outputs", str(target))
        # the owner's: the bench empties a table (TRUNCATE) for its mismatch listing
        dsn = libpq_url(Contract.model_validate(merge_outputs(doc)).timescale, "owner")
        fill(store, dsn, rows)
        print(f"peak RSS after filling: {measure.rss_mib():.0f} MiB")
        tables = ["daily_bars", "intraday_trades"]
        runs: dict[str, list[float]] = {"verify": [], "raw": [], "raw together": []}
        for r in range(rounds):
            names = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in names:
                started_cpu = measure.cpu_s()
                if name == "verify":
                    with psycopg.connect(dsn) as pg:
                        result = verify(store, pg, tables=tables)
                    assert result.equal, json.dumps(result.to_dict())[:2000]
                    chunks = sum(t.chunks for t in result.tables)
                    seconds, what = result.seconds, f"equal={result.equal}, {chunks} chunks"
                else:
                    seconds, n = raw(store, dsn, tables, together=name == "raw together")
                    what = f"{n:,} source rows, both sides read"
                runs[name].append(seconds)
                print(f"round {r + 1}: {name:12s} {seconds:6.2f} s {rows * len(tables) / seconds:>10,.0f} rows/s  "
                      f"(this process {measure.cpu_s() - started_cpu:5.2f} CPU s)  {what}")
        total = rows * len(tables)
        print(f"\n{total:,} source rows ({rows:,} bars + {rows:,} trades), {rounds} round(s), medians:")
        for name, times in runs.items():
            m = statistics.median(times)
            print(f"{name:12s} {m:6.2f} s {total / m:>10,.0f} rows/s   (best {total / min(times):,.0f} rows/s)")
        v = statistics.median(runs["verify"])
        print(f"ratio verify / raw (time): {v / statistics.median(runs['raw']):.2f}x; "
              f"verify / raw together: {v / statistics.median(runs['raw together']):.2f}x")
        print(f"peak RSS: {measure.rss_mib():.0f} MiB")
        mismatches(dsn, store, tables, work)
    finally:
        h.drop_scratch_database(base, database)


def mismatches(dsn: str, store: Path, tables: list[str], work: Path) -> None:
    """Every bar missing on TimescaleDB: each one listed (the listing file), in flat memory."""
    with psycopg.connect(dsn) as pg:
        pg.execute("TRUNCATE daily_bars")
        pg.commit()
        before, listing = measure.rss_mib(), work / "mismatches.jsonl"
        result = verify(store, pg, tables=tables, listing=listing)
    n = sum(t.mismatch_count for t in result.tables)
    print(f"\nevery bar missing on TimescaleDB: {n:,} mismatches listed in {result.seconds:.2f} s "
          f"({n / result.seconds:,.0f}/s), listing {listing.stat().st_size / 2 ** 20:.0f} MiB; "
          f"peak RSS {before:.0f} -> {measure.rss_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, help="outputs.json of a running environment (default: start one)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="bars, and as many trades")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tier-verify-") as tmp:
        work = Path(tmp)
        if args.outputs:
            bench(args.outputs, args.rows, args.rounds, work)
            return
        state = work / "env"
        run("local", "up", "--state-dir", str(state))
        try:
            bench(state / "outputs.json", args.rows, args.rounds, work)
        finally:
            run("local", "down", "--state-dir", str(state))


if __name__ == "__main__":
    main()
