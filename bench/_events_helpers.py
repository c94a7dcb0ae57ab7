"""Helpers for bench/events.py: the environment, a bench-only topic, outbox fill, the raw
producer, librdkafka statistics, and a relay with timers (a copy of `Relay.publish_batch`
with a clock around each step, plus the alternatives measured against it)."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import psycopg
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from backbone.clients.kafka import ensure_topic, kafka_client_config
from backbone.contract import Contract
from backbone.contract.model import TopicSpec
from backbone.events.relay import _SELECT, PRODUCER_SETTINGS, Relay, RelayError

TOPIC_CONFIG = {"min.insync.replicas": "2", "retention.ms": "3600000"}
SYMBOLS = 500  # keys bars:SYM000..SYM499
PER_RUN = 500  # events per simulated ingest run (one per symbol), sharing run_id and committed_at


def backbone_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("backbone")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "backbone"]


@contextlib.contextmanager
def environment(outputs: Path | None, brokers: int = 3) -> Iterator[Path]:
    """The given outputs contract, or a fresh `backbone local up --kafka-brokers N` in a
    temp dir, always taken down afterwards."""
    if outputs is not None:
        yield outputs
        return
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        state = ["--state-dir", tmp]
        print(f"starting a local environment ({brokers} brokers) in {tmp} ...", file=sys.stderr, flush=True)
        up = subprocess.run(backbone_cmd() + ["local", "up", "--kafka-brokers", str(brokers), *state],
                            capture_output=True, text=True)
        try:
            if up.returncode != 0:
                raise SystemExit(f"backbone local up failed ({up.returncode}):\n{up.stdout}{up.stderr}")
            yield Path(tmp) / "outputs.json"
        finally:
            subprocess.run(backbone_cmd() + ["local", "down", *state], capture_output=True)


def with_topic(contract: Contract, topic: str, partitions: int = 6, rf: int = 3) -> Contract:
    """The contract with its events topic renamed to a bench-only one (declared too)."""
    spec = TopicSpec(name=topic, partitions=partitions, replication_factor=rf, config=TOPIC_CONFIG)
    kafka = contract.kafka.model_copy(update={"topics": [*contract.kafka.topics, spec]})
    return contract.model_copy(update={"kafka": kafka,
                                       "data": contract.data.model_copy(update={"events_topic": topic})})


def create_topic(contract: Contract, topic: str, partitions: int = 6, rf: int = 3) -> None:
    admin = AdminClient(kafka_client_config(contract.kafka, 10))
    ensure_topic(admin, NewTopic(topic, partitions, rf, config=TOPIC_CONFIG), 10)
    for _ in range(100):  # every partition has a leader before anything is timed
        meta = admin.list_topics(topic, timeout=10).topics[topic]
        if len(meta.partitions) == partitions and all(p.leader >= 0 for p in meta.partitions.values()):
            return
        time.sleep(0.1)


def delete_topics(contract: Contract, topics: list[str]) -> None:
    admin = AdminClient(kafka_client_config(contract.kafka, 10))
    for future in admin.delete_topics(topics, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            future.result(timeout=15)


def broker_version(contract: Contract) -> str:
    """The Kafka version from a broker's own config listing (best effort)."""
    from confluent_kafka.admin import ConfigResource
    admin = AdminClient(kafka_client_config(contract.kafka, 10))
    try:
        meta = admin.list_topics(timeout=10)
        res = ConfigResource(ConfigResource.Type.BROKER, str(next(iter(meta.brokers))))
        cfg = admin.describe_configs([res])[res].result(timeout=10)
        return cfg.get("inter.broker.protocol.version").value or "?"
    except Exception:
        return "?"


# --- the outbox ----------------------------------------------------------------------

_FILL = """
WITH g AS (
  SELECT i, gen_random_uuid()::text AS id, 'SYM' || lpad((i %% {symbols})::text, 3, '0') AS sym,
         md5(%(tag)s || (i / {per_run})::text) AS run_id,
         timestamptz '2024-01-02 14:30:00+00' + make_interval(days => i / {per_run}) AS day
  FROM generate_series(0, %(n)s - 1) i)
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
SELECT id, 'bars', 'bars:' || sym, 'ingest.committed',
       jsonb_build_object('event_id', id, 'run_id', run_id, 'dimension', 'bars', 'symbol', sym,
                          'rows_inserted', 1 + i %% 390, 'rows_updated', i %% 3,
                          'first_ts', to_char(day, 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
                          'last_ts', to_char(day + interval '6 hours 29 minutes', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
                          'source', 'vendor/daily-bars.csv',
                          'committed_at', to_char(now() + make_interval(secs => i / {per_run}),
                                                  'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
FROM g ORDER BY i
""".format(symbols=SYMBOLS, per_run=PER_RUN)


def fill_outbox(conn: psycopg.Connection, n: int, tag: str) -> int:
    """n unpublished ingest events in the shape `events.model` makes (500 symbols, runs of
    500 events sharing run_id/committed_at); returns the highest seq before them."""
    before = conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]
    with conn.transaction():
        conn.execute(_FILL, {"n": n, "tag": tag})
    return before


def pending(conn: psycopg.Connection, after: int) -> list[tuple[str, str, list]]:
    """(key, payload, headers) of the unpublished events after `after`, exactly as the relay
    reads and sends them."""
    rows = conn.execute(_SELECT.replace("FOR UPDATE", "").replace("WHERE", "WHERE seq > %s AND"),
                        (after, 10 ** 9)).fetchall()
    return [(key, payload, [("id", event_id), ("type", kind)]) for _seq, event_id, key, kind, payload in rows]


def unpublished(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]


def clear_outbox(conn: psycopg.Connection, after: int) -> None:
    """Drop the bench's (published) rows so every round starts from the same table."""
    conn.execute("DELETE FROM outbox WHERE seq > %s AND published_at IS NOT NULL", (after,))
    conn.execute("VACUUM (ANALYZE) outbox")


# --- Kafka -----------------------------------------------------------------------------

class Stats:
    """librdkafka statistics (statistics.interval.ms): the last snapshot seen."""

    INTERVAL_MS = 100

    def __init__(self) -> None:
        self.last: dict = {}

    def settings(self) -> dict:
        return {"statistics.interval.ms": self.INTERVAL_MS, "stats_cb": self._cb}

    def _cb(self, text: str) -> None:
        self.last = json.loads(text)

    def settle(self, producer: Producer) -> dict:
        """A snapshot taken after everything was acknowledged."""
        self.last = {}
        deadline = time.monotonic() + 3 * self.INTERVAL_MS / 1000
        while not self.last and time.monotonic() < deadline:
            producer.poll(self.INTERVAL_MS / 1000)
        snap = self.last
        return {"tx_bytes": snap.get("tx_bytes", 0), "txmsgs": snap.get("txmsgs", 0),
                "batch_avg": _batch_avg(snap)}


def _batch_avg(snap: dict) -> float:
    """Mean messages per produced batch (MessageSet), over all topics' window stats."""
    counts = [t["batchcnt"] for t in snap.get("topics", {}).values() if t.get("batchcnt", {}).get("cnt")]
    total = sum(c["cnt"] for c in counts)
    return sum(c["avg"] * c["cnt"] for c in counts) / total if total else 0.0


def producer_config(contract: Contract, extra: dict | None = None) -> dict:
    return {**kafka_client_config(contract.kafka, 10.0), **PRODUCER_SETTINGS, **(extra or {})}


def raw_produce(producer: Producer, topic: str, messages: list[tuple[str, str, list]]) -> None:
    """The same (key, payload, headers) through confluent-kafka, every one acknowledged:
    what the relay's produce loop does, without the database."""
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg) -> None:
        if err is not None:
            failures.append(err.str())

    produce, poll = producer.produce, producer.poll
    for key, payload, headers in messages:
        while True:
            try:
                produce(topic, payload, key, on_delivery=delivered, headers=headers)
                break
            except BufferError:
                poll(0.05)
    left = producer.flush(30)
    if failures or left:
        raise RuntimeError(f"raw producer: {failures[:1] or left} not acknowledged")


def warm(producer: Producer, topic: str) -> None:
    """Metadata and broker connections before the clock starts."""
    producer.list_topics(topic, timeout=10)


# --- the relay, with timers ------------------------------------------------------------

class TimedRelay(Relay):
    """`Relay.publish_batch` step by step with a clock around each step (select, produce,
    flush, update, commit); `update="range"` prototypes marking the batch published by
    `seq BETWEEN first AND last` instead of `seq = ANY(...)`."""

    def __init__(self, *args, update: str = "any", **kwargs):
        super().__init__(*args, **kwargs)
        self.update = update
        self.timers: dict[str, float] = defaultdict(float)
        self.batches = 0

    def publish_batch(self) -> int:
        clock, t = time.perf_counter, self.timers
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg) -> None:
            if err is not None:
                failures.append(err.str())

        t0 = clock()
        with self.conn.transaction():
            rows = self.conn.execute(_SELECT, (self.batch,)).fetchall()
            t1 = clock()
            t["select"] += t1 - t0
            if not rows:
                return 0
            produce, topic = self.producer.produce, self.topic
            for _seq, event_id, key, kind, payload in rows:
                while True:
                    try:
                        produce(topic, payload, key, on_delivery=delivered,
                                headers=[("id", event_id), ("type", kind)])
                        break
                    except BufferError:
                        self.producer.poll(0.05)
            t2 = clock()
            t["produce"] += t2 - t1
            left = self.producer.flush(self.timeout_s)
            t3 = clock()
            t["flush"] += t3 - t2
            if failures or left:
                raise RelayError(f"publishing failed: {failures[:1] or left}")
            if self.update == "range":
                self.conn.execute("UPDATE outbox SET published_at = now() WHERE seq BETWEEN %s AND %s "
                                  "AND published_at IS NULL", (rows[0][0], rows[-1][0]))
            else:
                self.conn.execute("UPDATE outbox SET published_at = now() WHERE seq = ANY(%s)",
                                  ([r[0] for r in rows],))
            t4 = clock()
            t["update"] += t4 - t3
        t["commit"] += clock() - t4
        self.batches += 1
        self.published += len(rows)
        return len(rows)
