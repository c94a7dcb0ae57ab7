"""Helpers for bench/events.py: the environment, a bench-only topic, outbox fill, the raw
producer and librdkafka statistics (the relay variants are in _relay_variants.py)."""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

import confluent_kafka
import psycopg
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from backbone.clients.kafka import ensure_topic, kafka_client_config
from backbone.clients.timescale import libpq_url
from backbone.contract import Contract
from backbone.contract.model import TopicSpec
from backbone.events.relay import _SELECT, PRODUCER_SETTINGS, backlog

from _measure import local_environment  # noqa: E402 (a sibling: bench scripts run from bench/)

TOPIC_CONFIG = {"min.insync.replicas": "2", "retention.ms": "3600000"}
SYMBOLS = 500  # keys bars:SYM000..SYM499
PER_RUN = 500  # events per simulated ingest run (one per symbol), sharing run_id and committed_at


def environment(outputs: Path | None, brokers: int = 3) -> Iterator[Path]:
    """The given outputs contract, or a fresh `backbone local up --kafka-brokers N`."""
    return local_environment(outputs, "--kafka-brokers", str(brokers))


def with_topic(contract: Contract, topic: str, partitions: int = 6, rf: int = 3) -> Contract:
    """The contract with its events topic renamed to a bench-only one (declared too)."""
    spec = TopicSpec(name=topic, partitions=partitions, replication_factor=rf, config=TOPIC_CONFIG)
    kafka = contract.kafka.model_copy(update={"topics": [*contract.kafka.topics, spec]})
    return contract.model_copy(update={"kafka": kafka,
                                       "data": contract.data.model_copy(update={"events_topic": topic})})


def create_topic(contract: Contract, topic: str, partitions: int = 6, rf: int = 3) -> None:
    admin = AdminClient(kafka_client_config(contract.kafka, 10, "admin"))
    ensure_topic(admin, NewTopic(topic, partitions, rf, config=TOPIC_CONFIG), 10)
    for _ in range(100):  # every partition has a leader before anything is timed
        meta = admin.list_topics(topic, timeout=10).topics[topic]
        if len(meta.partitions) == partitions and all(p.leader >= 0 for p in meta.partitions.values()):
            return
        time.sleep(0.1)


def delete_topics(contract: Contract, topics: list[str]) -> None:
    admin = AdminClient(kafka_client_config(contract.kafka, 10, "admin"))
    for future in admin.delete_topics(topics, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            future.result(timeout=15)


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
    """n unpublished ingest events in the shape `data.outbox` makes (500 symbols, runs of
    500 events sharing run_id/committed_at); returns the highest seq before them."""
    before = conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]
    with conn.transaction():
        conn.execute(_FILL, {"n": n, "tag": tag})
    return before


def pending(conn: psycopg.Connection, after: int) -> list[tuple[str, str, list]]:
    """(key, payload, headers) of the unpublished events after `after`, exactly as the relay
    reads and sends them."""
    rows = conn.execute(_SELECT, (after, 2 ** 62, 10 ** 9)).fetchall()
    return [(key, payload, [("id", event_id), ("type", kind)]) for _seq, event_id, key, kind, payload in rows]


def unpublished(conn: psycopg.Connection) -> int:
    return backlog(conn).events


def clear_outbox(conn: psycopg.Connection, after: int) -> None:
    """Drop the bench's rows (the raw producer leaves its copies unpublished) so every
    round starts from the same table."""
    conn.execute("DELETE FROM outbox WHERE seq > %s", (after,))
    conn.execute("VACUUM (ANALYZE) outbox")


# --- Kafka -----------------------------------------------------------------------------

class Stats:
    """librdkafka statistics (statistics.interval.ms): the last snapshot, and the produce
    batches counted over every window (window stats reset at each interval)."""

    INTERVAL_MS = 100

    def __init__(self) -> None:
        self.last: dict = {}
        self.batches = 0
        self.batched_msgs = 0

    def settings(self) -> dict:
        return {"statistics.interval.ms": self.INTERVAL_MS, "stats_cb": self._cb}

    def _cb(self, text: str) -> None:
        self.last = json.loads(text)
        for topic in self.last.get("topics", {}).values():
            window = topic.get("batchcnt", {})
            self.batches += window.get("cnt", 0)
            self.batched_msgs += window.get("sum", 0)

    def settle(self, producer: Producer) -> dict:
        """A snapshot taken after everything was acknowledged."""
        self.last = {}
        deadline = time.monotonic() + 3 * self.INTERVAL_MS / 1000
        while not self.last and time.monotonic() < deadline:
            producer.poll(self.INTERVAL_MS / 1000)
        return {"tx_bytes": self.last.get("tx_bytes", 0), "txmsgs": self.last.get("txmsgs", 0),
                "batch_avg": self.batched_msgs / self.batches if self.batches else 0.0}


def producer_config(contract: Contract, extra: dict | None = None) -> dict:
    return {**kafka_client_config(contract.kafka, 10.0, "relay"), **PRODUCER_SETTINGS, **(extra or {})}


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
    """Metadata, a connection to every partition leader and the idempotent producer id
    before the clock starts (a running relay has all of them): one message per partition."""
    partitions = producer.list_topics(topic, timeout=10).topics[topic].partitions
    for p in partitions:
        producer.produce(topic, b"{}", b"warm-up", partition=p)
    if producer.flush(10):
        raise RuntimeError("warm-up messages not acknowledged")


def header(contract, events: int) -> None:
    """What the figures were measured on: brokers, PostgreSQL, cores, client versions."""
    brokers = len(AdminClient(kafka_client_config(contract.kafka, 10)).list_topics(timeout=10).brokers)
    with psycopg.connect(libpq_url(contract.timescale)) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    settings = ", ".join(f"{k}={v}" for k, v in PRODUCER_SETTINGS.items())
    print(f"## bench/events.py: {contract.environment} environment ({contract.platform}), {brokers} Kafka brokers "
          f"(KRaft), topics 6 partitions RF 3 min.insync.replicas 2, PostgreSQL {pg}, {os.cpu_count()} cores, "
          f"confluent-kafka {confluent_kafka.version()[0]} / librdkafka {confluent_kafka.libversion()[0]}\n")
    print(f"PRODUCER_SETTINGS: {settings}; payload shape of data.outbox, {events:,} events per run")


def create_scratch_database(timescale, name: str) -> None:
    """A scratch database made by the contract's `restore` account (the one that may create
    databases), the schema's owner allowed to migrate it (its CREATE privilege)."""
    from psycopg import sql
    with psycopg.connect(libpq_url(timescale, "restore"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if "owner" in timescale.roles:
            conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
                sql.Identifier(name), sql.Identifier(timescale.roles["owner"].user)))


def drop_scratch_database(timescale, name: str) -> None:
    from psycopg import sql
    with psycopg.connect(libpq_url(timescale, "restore"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
