"""Benchmark (not a test): the outbox relay against the raw confluent-kafka producer; ingest commit -> event handled.

    .venv/bin/python bench/events.py [--outputs FILE] [--events 100000] [--rounds 3]
        [--samples 500] [--warmup 50] [--interval-ms 30] [--latency-lingers 5]
        [--sweep] [--skip-throughput] [--skip-latency]

Without --outputs it starts its own `backbone local up --kafka-brokers 3` in a temp dir and
takes it down afterwards. With --outputs, use an environment nothing else writes events to:
the relay publishes every outbox row above its position, and the bench deletes the rows it
published. Its Kafka topics are its own (6 partitions, RF 3, min.insync.replicas 2), deleted
at the end.

- throughput: N outbox events (the shape `data.outbox` makes, ~350 bytes, keys bars:SYMnnn
  over 500 symbols) published by `Relay.drain()` (acknowledged, position advanced) against
  a raw Producer with the same client config and PRODUCER_SETTINGS sending the same (key,
  payload, headers) from memory and flushing; the order alternates by round; then the
  relay's time per step (bench/_relay_variants.py: TimedRelay).
- --sweep: compression none/lz4/zstd x linger.ms 0/5/20 (+ a few batch settings), raw and
  relay, msgs/s and bytes on the wire (librdkafka statistics, tx_bytes).
- latency: the relay running (`Relay.run`, woken by the ingest's NOTIFY), a bridge in a fresh
  group polled as `serve` does (`bridge.poll(timeout_s=0.5)`, which returns as soon as the
  first message arrives), and an ingest of 10 trades every ~30 ms; commit -> handler
  p50/p90/p99/max (per relay linger.ms).

Rounds interleave the paths (and the sweep's settings), so load from other work on the
machine spreads over all of them; medians are reported, with the load average.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _events_helpers as h  # noqa: E402
import _measure as measure  # noqa: E402
import _relay_variants as rv  # noqa: E402

from backbone.contract import Sources, load_contract  # noqa: E402
from backbone.events.relay import Relay  # noqa: E402
from backbone.clients.timescale import libpq_url

SWEEP = [{"compression.type": c, "linger.ms": l} for c in ("none", "lz4", "zstd") for l in (0, 5, 20)] + [
    {"compression.type": "lz4", "linger.ms": 5, "batch.size": 65536},
    {"compression.type": "lz4", "linger.ms": 5, "batch.num.messages": 1000},
    {"compression.type": "lz4", "linger.ms": 5, "delivery.report.only.error": True}]





def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


class Bench:
    def __init__(self, contract, events: int, rounds: int):
        self.contract, self.n, self.rounds = contract, events, rounds
        self.token = uuid.uuid4().hex[:8]
        self.topics: list[str] = []
        self.conn = psycopg.connect(libpq_url(contract.timescale), autocommit=True)
        self.msg_bytes = 0.0

    def topic(self, kind: str):
        name = f"ingest.bench-{kind}-{self.token}"  # under the ingest prefix the relay may write
        h.create_topic(self.contract, name)
        self.topics.append(name)
        return name, h.with_topic(self.contract, name)

    def close(self) -> None:
        if self.topics:
            h.delete_topics(self.contract, self.topics)
        self.conn.close()

    # --- one measured run -------------------------------------------------------------

    def raw(self, topic: str, messages, extra: dict | None = None, stats: h.Stats | None = None):
        config = h.producer_config(self.contract, {**(extra or {}), **(stats.settings() if stats else {})})
        producer = Producer(config)
        h.warm(producer, topic)
        cpu, started = measure.cpu_s(), time.perf_counter()
        h.raw_produce(producer, topic, messages)
        seconds, cpu = time.perf_counter() - started, measure.cpu_s() - cpu
        snap = stats.settle(producer) if stats else None
        if snap is not None:
            snap["cpu_s"] = cpu
        return seconds, snap

    def relay(self, contract, cls=Relay, settings: dict | None = None, stats: h.Stats | None = None, **kwargs):
        relay = cls(contract, settings={**(settings or {}), **(stats.settings() if stats else {})}, **kwargs)
        try:
            h.warm(relay.producer, relay.topic)
            started = time.perf_counter()
            published = relay.drain()
            seconds = time.perf_counter() - started
            snap = stats.settle(relay.producer) if stats else None
        finally:
            relay.close()
        if published < self.n or h.unpublished(self.conn):
            raise SystemExit(f"relay published {published} of {self.n}; {h.unpublished(self.conn)} left")
        return seconds, snap, relay

    def fill(self) -> tuple[int, list]:
        """N fresh events in the outbox (and the planner statistics autovacuum would have
        after such a burst); the seq before them, and their (key, payload, headers)."""
        after = h.fill_outbox(self.conn, self.n, self.token)
        self.conn.execute("ANALYZE outbox")
        messages = h.pending(self.conn, after)
        sizes = [len(k) + len(p) + sum(len(n) + len(v) for n, v in hd) for k, p, hd in messages]
        self.msg_bytes = sum(sizes) / len(sizes)
        return after, messages

    def pair(self, i: int, topic: str, contract, extra: dict | None = None, stats: bool = False, **relay_kw):
        """(raw seconds, raw stats, relay seconds, relay stats) on the same fresh events; the
        side that goes first alternates with i."""
        after, messages = self.fill()
        out = {}
        for side in (("raw", "relay") if i % 2 == 0 else ("relay", "raw")):
            tap = h.Stats() if stats else None
            if side == "raw":
                out[side] = self.raw(topic, messages, extra, tap)
            else:
                out[side] = self.relay(contract, settings=extra, stats=tap, **relay_kw)[:2]
        h.clear_outbox(self.conn, after)
        return out["raw"][0], out["raw"][1], out["relay"][0], out["relay"][1]

    # --- the sections -------------------------------------------------------------------

    def throughput(self) -> None:
        topic, contract = self.topic("events")
        self.pair(0, topic, contract)  # warm-up: topic leaders, page cache, the outbox's pages
        raw, relay, loads = [], [], []
        for i in range(self.rounds):
            r, _, s, _ = self.pair(i + 1, topic, contract)
            raw.append(self.n / r)
            relay.append(self.n / s)
            loads.append(os.getloadavg()[0])
            measure.progress(f"throughput round {i + 1}/{self.rounds}")
        ratios = [b / a for a, b in zip(raw, relay)]
        print(f"\n### Relay throughput: {self.n:,} events per run, median of {self.rounds} rounds\n")
        print("| path | msgs/s (median) | per round | vs raw |\n|---|---:|---|---:|")
        print(f"| raw confluent-kafka Producer + flush | {statistics.median(raw):,.0f} | "
              f"{', '.join(f'{x:,.0f}' for x in raw)} | 1.00x |")
        print(f"| Relay.drain() (batch 5000) | {statistics.median(relay):,.0f} | "
              f"{', '.join(f'{x:,.0f}' for x in relay)} | {statistics.median(ratios):.2f}x |")
        print(f"\ngoal relay/raw >= 0.6x: {'met' if statistics.median(ratios) >= 0.6 else 'NOT met'} "
              f"(median of per-round ratios {statistics.median(ratios):.2f}x; per round "
              f"{', '.join(f'{x:.2f}' for x in ratios)}); 1-min load average per round "
              f"{', '.join(f'{x:.1f}' for x in loads)}; peak RSS so far {measure.rss_mib():.0f} MiB")
        after, _ = self.fill()
        seconds, _, timed = self.relay(contract, cls=rv.TimedRelay)
        h.clear_outbox(self.conn, after)
        self.breakdown("Where the relay's time goes (one run, bench/_relay_variants.py: TimedRelay)", timed, seconds)

    def breakdown(self, title: str, relay, total: float) -> None:
        per = max(1, relay.batches)
        print(f"\n{title}: {relay.batches} batches, {total:.2f} s in drain() (shares of that)\n")
        print("| step | total s | share | ms per batch |\n|---|---:|---:|---:|")
        for step, sec in relay.timers.items():
            print(f"| {step} | {sec:.2f} | {sec / total:.0%} | {sec / per * 1000:.1f} |")

    def sweep(self) -> None:
        topic, contract = self.topic("sweep")
        runs: dict[int, list[tuple]] = {k: [] for k in range(len(SWEEP))}
        for i in range(self.rounds):  # every round visits every setting, in a rotated order
            order = list(range(len(SWEEP)))
            order = order[i % len(order):] + order[:i % len(order)]
            for j, k in enumerate(order):
                r, rs, s, ss = self.pair(i + j, topic, contract, SWEEP[k], stats=True)
                runs[k].append((self.n / r, self.n / s, rs["tx_bytes"] / self.n, ss["tx_bytes"] / self.n,
                                rs["batch_avg"], rs["cpu_s"] / self.n * 1e6))
                measure.progress(f"sweep round {i + 1}/{self.rounds}, setting {j + 1}/{len(SWEEP)}")
        rows = [(SWEEP[k], *map(list, zip(*runs[k]))) for k in range(len(SWEEP))]
        print(f"\n### Producer settings sweep: {self.n:,} events per run, medians of {self.rounds} rounds "
              f"(idempotent, acks=all; other PRODUCER_SETTINGS unchanged)\n")
        print("| settings | raw msgs/s | relay msgs/s | relay/raw | raw CPU us/msg | raw bytes/msg on the wire | "
              "relay bytes/msg | raw msgs/batch |\n|---|---:|---:|---:|---:|---:|---:|---:|")
        for extra, raw, relay, raw_b, relay_b, batch, cpu in rows:
            label = ", ".join(f"{k}={v}" for k, v in extra.items())
            print(f"| {label} | {statistics.median(raw):,.0f} | {statistics.median(relay):,.0f} | "
                  f"{statistics.median([b / a for a, b in zip(raw, relay)]):.2f}x | {statistics.median(cpu):.2f} | "
                  f"{statistics.median(raw_b):.0f} | {statistics.median(relay_b):.0f} | "
                  f"{statistics.median(batch):.0f} |")
        print(f"\n(payload + key + headers ~{self.msg_bytes:.0f} bytes per message before compression)")

    def latency(self, samples: int, warmup: int, interval_s: float, lingers: list[int]) -> None:
        from backbone.data import open_backbone
        topic, contract = self.topic("latency")
        print(f"\n### Ingest commit -> event handled: {samples} samples after {warmup} warm-up, one ingest "
              f"(1 symbol, 10 trades) every {interval_s * 1000:.0f} ms; load average {load()}\n")
        print("| relay linger.ms | p50 ms | p90 ms | p99 ms | max ms | commit -> relay produced p50/p99 | "
              "produced -> handled p50/p99 | commit -> ingest() returned p50 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        with open_backbone(contract) as bb:
            committed = [0.0]
            original = bb.store.transaction

            @contextlib.contextmanager
            def transaction():
                with original() as tx:
                    yield tx
                committed[0] = time.perf_counter()  # COMMIT has returned
            bb.store.transaction = transaction
            for linger in lingers:
                row = self._latency_run(bb, contract, committed, {"linger.ms": linger}, samples, warmup, interval_s)
                print(f"| {linger} | {row}")
        print("\n(commit = the ingest transaction's COMMIT returned; produced = the relay handed the event to the "
              "producer; handled = the bridge's callback, `bridge.poll(timeout_s=0.5)` as `serve` polls; the ingest "
              "journals the run after its commit, hence commit -> ingest() returned)")

    def _latency_run(self, bb, contract, committed, settings, samples, warmup, interval_s) -> str:
        from backbone.data.rows import Trade
        from backbone.events.bridge import open_bridge
        relay = rv.ProducedAtRelay(contract, settings=settings)
        stop, done = threading.Event(), threading.Event()
        relay_thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_s": 1.0}, daemon=True)
        relay_thread.start()
        bridge = open_bridge(contract, group=f"backbone-bridge-bench-{uuid.uuid4().hex[:8]}")
        got: dict[str, float] = {}
        commits: dict[str, float] = {}
        returned: dict[str, float] = {}
        run_ids: list[str] = []

        def handler(event) -> None:
            got[event.payload.get("run_id")] = time.perf_counter()

        def consume() -> None:
            while not done.is_set():
                bridge.poll(handler, timeout_s=0.5)
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        try:
            deadline = time.monotonic() + 30
            while not bridge.assigned and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # the group settled on every partition
            after = self.conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]
            base = dt.datetime.now(dt.timezone.utc)
            next_at = time.perf_counter()
            for i in range(warmup + samples):
                rows = [Trade("SYM" + str(i % 500).zfill(3), base + dt.timedelta(microseconds=i * 10 + j),
                              uuid.uuid4().hex, 100.0 + j, 1.0, "buy", "bench") for j in range(10)]
                result = bb.ingest("trades", rows, source="bench/events.py")
                returned[result.run_id] = time.perf_counter()
                commits[result.run_id] = committed[0]
                if i >= warmup:
                    run_ids.append(result.run_id)
                next_at += interval_s
                time.sleep(max(0.0, next_at - time.perf_counter()))
            deadline = time.monotonic() + 15
            while any(r not in got for r in run_ids) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            done.set()
            consumer.join(5)
            bridge.close()
            stop.set()
            relay_thread.join(10)
            relay.close()
        h.clear_outbox(self.conn, after)
        seen = [r for r in run_ids if r in got]
        if not seen:
            return "no event received |"
        produced = relay.produced_at
        lat = [(got[r] - commits[r]) * 1000 for r in seen]
        pick = [(produced[r] - commits[r]) * 1000 for r in seen if r in produced]
        hand = [(got[r] - produced[r]) * 1000 for r in seen if r in produced]
        ret = [(returned[r] - commits[r]) * 1000 for r in seen]
        missing = len(run_ids) - len(seen)
        return (f"{measure.pct(lat, 50):.1f} | {measure.pct(lat, 90):.1f} | {measure.pct(lat, 99):.1f} | {max(lat):.1f} | "
                f"{measure.pct(pick, 50):.1f} / {measure.pct(pick, 99):.1f} | {measure.pct(hand, 50):.1f} / {measure.pct(hand, 99):.1f} | "
                f"{measure.pct(ret, 50):.1f} |" + (f" ({missing} not received)" if missing else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, help="an existing environment's outputs contract "
                        "(default: start a local one with 3 brokers, stopped afterwards)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=30.0)
    parser.add_argument("--latency-lingers", default="5", help="relay linger.ms values for the latency runs, "
                        "comma-separated (default 5)")
    parser.add_argument("--sweep", action="store_true", help="compression x linger.ms (and batch) sweep")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args(argv)
    with h.environment(args.outputs) as outputs:
        contract = load_contract(Sources(outputs=outputs, environ={}))
        if contract.tier != "institutional" or contract.missing("timescale", "kafka"):
            print("needs an institutional contract with timescale and kafka", file=sys.stderr)
            return 2
        h.header(contract, args.events)
        bench = Bench(contract, args.events, args.rounds)
        try:
            if not args.skip_throughput:
                bench.throughput()
            if args.sweep:
                bench.sweep()
            if not args.skip_latency:
                bench.latency(args.samples, args.warmup, args.interval_ms / 1000,
                              [int(x) for x in args.latency_lingers.split(",") if x.strip()])
        finally:
            bench.close()
            print(file=sys.stderr)
        print(f"\npeak RSS {measure.rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
