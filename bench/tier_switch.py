"""Benchmark (not a test): a tier switch and a rollback of a bootstrap store of N bars + N
trades, each as a drill (a live writer and reader in another process), against the raw
drivers measured in the same run.

    .venv/bin/python bench/tier_switch.py [--outputs FILE] [--rows 1000000] [--report DIR]

Without --outputs it starts its own `backbone local up` (single node) in a temp dir and takes
it down afterwards; with it, the bench creates (and drops) its own database there.

- raw copy: sqlite3 reads the two tables in 50k-row batches and psycopg sends them with
  binary COPY into same-shaped hypertables (no checkpoints, no tracking): what the switch's
  copy does without its bookkeeping.
- switch: `Switch.run` under `--drill`: copy rows/s, verify rows/s, the write pause and
  acknowledged writes lost; then `rollback` under `--drill` the same way.
- peak RSS of this process (the copy and verification run in it), which must not grow with N.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _events_helpers as h  # noqa: E402
import _measure as measure  # noqa: E402

from backbone.contract import Contract, Sources, load_contract  # noqa: E402
from backbone.data import open_backbone  # noqa: E402
from backbone.data.rows import Bar, Trade  # noqa: E402
from backbone.tier import copy as mover  # noqa: E402
from backbone.tier.drill_run import drilled  # noqa: E402
from backbone.tier.ends import source_of  # noqa: E402
from backbone.tier.plan import make_plan  # noqa: E402
from backbone.tier.rollback import rollback  # noqa: E402
from backbone.tier.switch import Options, Switch  # noqa: E402
from backbone.tier.tables import TABLES  # noqa: E402

T0 = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)


def say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def fill(contract: Contract, n: int) -> float:
    started = time.perf_counter()
    with open_backbone(contract) as bb:
        bb.ingest("bars", lambda: (Bar(f"B{i % 1000:04d}", T0 + dt.timedelta(days=i // 1000), 1.0 + i % 97, 200.0 + i % 89,
                                       0.5, 1.5 + i % 83, i, "bench") for i in range(n)), source="bench")
        bb.ingest("trades", lambda: (Trade(f"T{i % 200:03d}", T0 + dt.timedelta(milliseconds=37 * i), f"x{i}",
                                           1.0 + (i % 1000) / 7, 1.0 + i % 13, "buy" if i % 2 else "sell", "bench")
                                     for i in range(n)), source="bench")
    return 2 * n / (time.perf_counter() - started)


def raw_copy(store: Path, dsn: str) -> float:
    """rows/s of sqlite3 -> psycopg binary COPY into fresh hypertables shaped like the real ones."""
    import sqlite3
    lite = sqlite3.connect(store)
    rows_done, started = 0, time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as pg:
        for name in ("daily_bars", "intraday_trades"):
            table, scratch = TABLES[name], f"raw_{name}"
            pg.execute(f"DROP TABLE IF EXISTS {scratch}")
            pg.execute(f"CREATE TABLE {scratch} (LIKE {name} INCLUDING ALL)")
            pg.execute(f"SELECT create_hypertable('{scratch}', 'ts')")
            types = mover.pg_types(pg, table)
            convert = mover.converter(table)
            cursor = lite.execute(f"SELECT {', '.join(table.columns)} FROM {name}")
            with pg.cursor().copy(f"COPY {scratch} ({', '.join(table.columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                while batch := cursor.fetchmany(50_000):
                    for row in batch:
                        copy.write_row(convert(row))
                    rows_done += len(batch)
        seconds = time.perf_counter() - started
        for name in ("daily_bars", "intraday_trades"):
            pg.execute(f"DROP TABLE raw_{name}")
    return rows_done / seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outputs", type=Path)
    p.add_argument("--rows", type=int, default=1_000_000, help="bars, and as many trades")
    p.add_argument("--report", type=Path, default=Path(".backbone/bench/tier"))
    args = p.parse_args(argv)
    with h.environment(args.outputs, brokers=1) as outputs:
        doc = json.loads(outputs.read_text())
        base = load_contract(Sources(outputs=outputs, environ={}))
        database = "bench_tier_" + uuid.uuid4().hex[:8]
        h.create_scratch_database(base.timescale, database)
        work = args.report / database
        work.mkdir(parents=True, exist_ok=True)
        store = work / "bootstrap.db"
        doc["backbone"] = {**doc["backbone"], "bootstrap": {"store": str(store.resolve())},
                           "timescale": {**doc["backbone"]["timescale"], "database": database}}
        inst_file = work / "institutional.json"
        inst_file.write_text(json.dumps(doc))
        try:
            return run(args, inst_file, store)
        finally:
            h.drop_scratch_database(base.timescale, database)
            inst_file.unlink()


def run(args, inst_file: Path, store: Path) -> int:
    import subprocess
    target = load_contract(Sources(outputs=inst_file, environ={}))
    source = source_of(target)
    subprocess.run(h.backbone_cmd() + ["migrate", "apply", "--extra", f"BACKBONE_BOOTSTRAP_STORE={store}"],
                   check=True, capture_output=True)
    say(f"filling {args.rows:,} bars + {args.rows:,} trades into the bootstrap store ...")
    fill_rate = fill(source, args.rows)
    subprocess.run(h.backbone_cmd() + ["migrate", "apply", "--outputs", str(inst_file)], check=True, capture_output=True)
    say("raw copy (sqlite3 -> psycopg binary COPY) ...")
    raw = raw_copy(store, h.libpq_url(target.timescale, "owner"))  # it makes scratch tables
    plan = make_plan(source, target, 0)
    switch = Switch(source, target, {"outputs": str(inst_file.resolve())}, Options(), say)
    outcomes = {}

    def run_switch():
        outcomes["switch"] = switch.run()
        return outcomes["switch"]
    say("switch (drill) ...")
    switched = drilled("switch", run_switch, source, target, {"outputs": str(inst_file.resolve())},
                       report_dir=args.report / "switch", budget_s=3.0, say=say).exit_code
    switch.close()

    def run_back():
        outcomes["rollback"] = rollback(source, target, Options(), False, say)
        return outcomes["rollback"]
    say("rollback (drill) ...")
    rolled = drilled("rollback", run_back, source, target, {"outputs": str(inst_file.resolve())},
                     report_dir=args.report / "rollback", budget_s=3.0, say=say).exit_code
    s, r = outcomes["switch"], outcomes["rollback"]
    copied = sum(s.copied.values())
    copy_rate = copied / s.phases["copy"]
    reports = {k: json.loads((args.report / k / f"tier-{k}-drill.json").read_text()) for k in ("switch", "rollback")}
    print(f"\n### Tier switch: {args.rows:,} bars + {args.rows:,} trades (bootstrap fill {fill_rate:,.0f} rows/s)\n")
    print("| measure | figure | vs raw | goal |\n|---|---:|---:|---|")
    print(f"| copy (switch phase 2, {copied:,} rows incl. journal and events) | {copy_rate:,.0f} rows/s | "
          f"{copy_rate / raw:.2f}x | >= 200k rows/s (floor 100k) |")
    print(f"| raw sqlite3 -> psycopg binary COPY, same run | {raw:,.0f} rows/s | 1.00x | |")
    print(f"| plan's estimate from its sample | {plan.estimate_s:.1f} s (sample {plan.sample_rows_per_s:,.0f} rows/s) | "
          f"actual copy {s.phases['copy']:.1f} s | |")
    print(f"| verify (switch phase 4) | {s.verification['rows_per_s']:,} rows/s | | >= 300k rows/s (floor 100k) |")
    print(f"| verify before the rollback | {r.verification['rows_per_s']:,} rows/s | | |")
    for name, rep, out in (("switch", reports["switch"], s), ("rollback", reports["rollback"], r)):
        print(f"| {name}: write pause (last ack old tier -> first ack new) | {rep['pause_s'] * 1000:.0f} ms | | <= 1 s |")
        print(f"| {name}: write fence | {out.fence_ms[-1]:.0f} ms | | <= 3 s |")
        print(f"| {name}: acknowledged writes lost | {len(rep['lost'])} of {rep['acknowledged']} | | 0 |")
    print(f"\nphases (s): {', '.join(f'{k} {v:.1f}' for k, v in s.phases.items())}; peak RSS {measure.rss_mib():.0f} MiB")
    print(f"timelines: {args.report / 'switch' / 'tier-switch-timeline.png'}, "
          f"{args.report / 'rollback' / 'tier-rollback-timeline.png'}")
    return switched or rolled


if __name__ == "__main__":
    sys.exit(main())
