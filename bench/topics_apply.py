"""Benchmark (not a test): `topics apply` on an up-to-date cluster vs. the raw AdminClient
calls needed merely to observe the same state (list_topics + describe_configs).

    .venv/bin/python bench/topics_apply.py .backbone/local/outputs.json [--rounds 20]

Both sides build a fresh AdminClient per round (what one CLI invocation pays, interpreter
start-up aside) and run interleaved, so cluster warm-up favours neither. Prints the median
and best times, their ratio, and the admin calls / writes the up-to-date apply issued.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from backbone.clients.kafka import kafka_client_config
from backbone.contract.sources import Sources, load_contract
from backbone.topics.model import validate_declared
from backbone.topics.admin import CountingAdmin, apply_plan, plan_cluster


def backbone_apply(kafka, timeout_s):
    admin = CountingAdmin(kafka, timeout_s)
    return apply_plan(admin, plan_cluster(admin, kafka.topics))


def raw_observe(kafka, timeout_s):
    admin = AdminClient(kafka_client_config(kafka, timeout_s, "admin"))
    metadata = admin.list_topics(timeout=timeout_s)
    names = [t.name for t in kafka.topics if t.name in metadata.topics]
    if names:
        for future in admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names]).values():
            future.result(timeout=timeout_s)
    return metadata


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path, help="outputs contract (e.g. `local up`'s outputs.json)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)

    kafka = load_contract(Sources(outputs=args.outputs)).kafka
    if kafka is None:
        print("the contract has no Kafka section", file=sys.stderr)
        return 2
    validate_declared(kafka.topics, kafka.expected_brokers)
    first = backbone_apply(kafka, args.timeout)  # bring the cluster up to date
    if first.exit_code:
        print(f"the first apply did not succeed ({first.status}): {list(first.refused)}", file=sys.stderr)
        return 1
    print(f"first apply: {first.status}, {first.writes} admin write(s)")

    ours, raw, outcomes = [], [], []
    for _ in range(args.rounds):
        t, outcome = timed(backbone_apply, kafka, args.timeout)
        ours.append(t)
        outcomes.append(outcome)
        raw.append(timed(raw_observe, kafka, args.timeout)[0])

    second = outcomes[0]
    writes = sum(o.writes for o in outcomes)
    print(f"{len(kafka.topics)} declared topic(s), {second.plan.brokers} broker(s), {args.rounds} rounds each")
    print(f"backbone topics apply (up to date): median {statistics.median(ours) * 1000:7.2f} ms, "
          f"best {min(ours) * 1000:7.2f} ms")
    print(f"raw list_topics + describe_configs: median {statistics.median(raw) * 1000:7.2f} ms, "
          f"best {min(raw) * 1000:7.2f} ms")
    print(f"ratio apply / raw observe: median {statistics.median(ours) / statistics.median(raw):.2f}x, "
          f"best {min(ours) / min(raw):.2f}x")
    print(f"second apply: status {second.status}, admin calls {dict(second.calls)} "
          f"({second.reads} read(s), {second.writes} write(s)); writes over all {args.rounds} rounds: {writes}")
    return 0 if writes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
