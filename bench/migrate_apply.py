"""Benchmark (not a test): `migrate apply` on an up-to-date database against the raw
psycopg query that merely reads the schema version, in the same run; also prints the
statements the up-to-date apply issued (writes must be 0).

    .venv/bin/python bench/migrate_apply.py .backbone/local/outputs.json [--rounds 10]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import psycopg

from backbone.migrate import ops as migrate
from backbone.contract.sources import Sources, load_contract
from backbone.clients.timescale import libpq_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    contract = load_contract(Sources(outputs=args.outputs))
    migrate.apply(migrate.engine_for(contract, duty="owner"), contract)  # bring it up to date first
    applies, raws, counters = [], [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        _, counter = migrate.apply(migrate.engine_for(contract, duty="owner"), contract)
        applies.append(time.perf_counter() - started)
        counters.append(counter)
        started = time.perf_counter()
        with psycopg.connect(libpq_url(contract.timescale)) as conn:
            conn.execute("SELECT version_num FROM alembic_version").fetchone()
        raws.append(time.perf_counter() - started)
    a, r = statistics.median(applies), statistics.median(raws)
    print(f"migrate apply (up to date):   median {a * 1000:8.1f} ms   best {min(applies) * 1000:8.1f} ms")
    print(f"raw version read (psycopg):   median {r * 1000:8.1f} ms   best {min(raws) * 1000:8.1f} ms")
    print(f"ratio apply / raw (median):   {a / r:8.2f}x")
    print(f"statements per up-to-date apply: {counters[-1].writes} writes, {counters[-1].reads} reads "
          f"(writes over all rounds: {sum(c.writes for c in counters)})")


if __name__ == "__main__":
    main()
