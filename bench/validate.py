"""Benchmark (not a test): `backbone validate` wall time against sequential raw client round
trips, one per service (psycopg SELECT 1, redis-py PING, AdminClient metadata), measured in
the same run and interleaved.

    .venv/bin/python bench/validate.py .backbone/local/outputs.json [--rounds 10]

validate does far more than the raw round trips (deep probes, migration and topic drift
checks, a Kafka canary and a store -> cache -> stream smoke run), concurrently; the ratio
says what that thoroughness costs.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import psycopg
import redis
from confluent_kafka.admin import AdminClient

from backbone.checks import run_concurrently
from backbone.cli.checks import plan_checks
from backbone.clients.kafka import kafka_client_config
from backbone.contract.sources import Sources, load_contract
from backbone.clients.timescale import libpq_url


def raw_round_trips(contract, timeout_s: float) -> None:
    with psycopg.connect(libpq_url(contract.timescale), connect_timeout=int(timeout_s)) as conn:
        conn.execute("SELECT 1").fetchone()
    client = redis.Redis.from_url(contract.redis.connection_url(), socket_timeout=timeout_s,
                                  **({"ssl_ca_data": contract.redis.ca_pem} if contract.redis.tls else {}))
    client.ping()
    client.close()
    AdminClient(kafka_client_config(contract.kafka, timeout_s)).list_topics(timeout=timeout_s)


def validate(contract, timeout_s: float) -> None:
    results = run_concurrently(plan_checks(contract, "validate", timeout_s), deadline_s=timeout_s + 2)
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"environment not ready, benchmark meaningless: {[(r.name, r.code) for r in bad]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    contract = load_contract(Sources(outputs=args.outputs))
    if contract.tier != "institutional":
        raise SystemExit("needs an institutional environment (e.g. `backbone local up --kafka-brokers 3`)")
    timings: dict[str, list[float]] = {"validate": [], "raw": []}
    validate(contract, 5)  # warm-up: creates the canary topic once
    for i in range(args.rounds):
        for name, fn in (("validate", validate), ("raw", raw_round_trips))[:: 1 if i % 2 else -1]:
            started = time.perf_counter()
            fn(contract, 5)
            timings[name].append(time.perf_counter() - started)
        print(f"\rround {i + 1}/{args.rounds}", end="", flush=True)
    print()
    v, r = statistics.median(timings["validate"]), statistics.median(timings["raw"])
    print(f"validate (6 checks, concurrent):      median {v * 1000:8.1f} ms   best {min(timings['validate']) * 1000:8.1f} ms")
    print(f"raw round trips (3, sequential):      median {r * 1000:8.1f} ms   best {min(timings['raw']) * 1000:8.1f} ms")
    print(f"ratio validate / raw (median):        {v / r:8.2f}x")


if __name__ == "__main__":
    main()
