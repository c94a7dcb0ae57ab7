"""The relay: outbox rows to the contract's events topic, in order, each marked published
once Kafka has acknowledged it.

- One active relay per database (a session advisory lock); another relay stands by.
- A batch is one transaction: lock up to `batch` unpublished rows in `seq` order, produce
  each (key `aggregateid`, value `payload`, headers `id` and `type`), wait until Kafka has
  acknowledged every one (idempotent producer, acks=all), mark them published, commit. A
  failure before the commit leaves them unpublished and they go again: delivery is
  at-least-once, and consumers deduplicate by event id.
- An ingest's NOTIFY (delivered at its commit) wakes the relay; it also looks every `idle_s`.
- Published rows older than `keep_published_s` are pruned (Kafka is the log from there on).
"""
from __future__ import annotations

import select
import threading
import time
from dataclasses import dataclass
from typing import Callable

import psycopg
from confluent_kafka import KafkaError

from ..clients import timescale as timescale_client
from ..clients import kafka as kafka_client
from ..contract import Contract
from ..data.store_timescale import OUTBOX_CHANNEL
from ..errors import BackboneError, ConfigError

LOCK_KEY = 0x6261636B626F6E65 & 0x7FFFFFFFFFFFFFFF  # "backbone": one relay per database
# chosen by measurement (bench/events.py, ~420-byte JSON payloads): lz4 cuts the bytes on the
# wire 5.8x at the lowest CPU per message; linger 0 halves producer throughput while 5 and 20
# do the same (the relay flushes every batch, so linger adds no latency)
PRODUCER_SETTINGS = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
                     "batch.num.messages": 10_000, "queue.buffering.max.messages": 200_000}
# read from the unpublished end of `outbox_pending` (ORDER BY seq alone walks the primary key
# past every published row still kept: 42 ms a batch instead of 12)
_SELECT = ("SELECT seq, id, aggregateid, type, payload::text FROM outbox WHERE published_at IS NULL "
           "ORDER BY published_at, seq LIMIT %s FOR UPDATE")
# the range keeps the planner on the primary key whatever its statistics say (a generic plan
# for `seq = ANY(...)` alone scanned the whole pending index after a burst: seconds a batch);
# the list keeps rows with a lower seq that committed late out of it
_MARK = "UPDATE outbox SET published_at = now() WHERE seq BETWEEN %s AND %s AND seq = ANY(%s)"


class RelayError(BackboneError):
    pass


@dataclass
class Backlog:
    events: int                 # unpublished outbox rows
    oldest_age_s: float | None  # how long the oldest of them has waited


def events_topic(contract: Contract) -> str:
    """The contract's events topic, which must be declared among its Kafka topics."""
    topic = contract.data.events_topic
    declared = [t.name for t in contract.kafka.topics] if contract.kafka else []
    if topic not in declared:
        raise ConfigError(f"data.events_topic {topic!r} is not declared in kafka.topics "
                          f"({', '.join(declared) or 'none declared'}); declare it and run `backbone topics apply`")
    return topic


def backlog(conn: psycopg.Connection) -> Backlog:
    count, age = conn.execute("SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 "
                              "FROM outbox WHERE published_at IS NULL").fetchone()
    return Backlog(count, age)


class Relay:
    def __init__(self, contract: Contract, timeout_s: float = 10.0, batch: int = 5000,
                 settings: dict | None = None, keep_published_s: float = 86_400):
        missing = contract.missing("timescale", "kafka")
        if contract.tier != "institutional" or missing:
            raise ConfigError("the relay needs an institutional contract with timescale and kafka "
                              "(the bootstrap tier's outbox is its event log: nothing to relay)")
        self.topic = events_topic(contract)
        self.batch, self.timeout_s, self.keep_published_s = batch, timeout_s, keep_published_s
        # a LISTEN session: its statements are bounded by the loop, not a statement timeout
        self.conn = timescale_client.connect(contract.timescale, timeout_s, autocommit=True,
                                             statement_timeout=False)
        self._woken = threading.Event()
        self.conn.add_notify_handler(lambda _: self._woken.set())  # fires whenever a query reads one
        self.conn.execute(f'LISTEN "{OUTBOX_CHANNEL}"')
        self.producer = kafka_client.producer(contract.kafka, timeout_s, {**PRODUCER_SETTINGS, **(settings or {})})
        self.active = False
        self.published = 0
        self._pruned_at = 0.0

    def close(self) -> None:
        self.producer.flush(self.timeout_s)
        self.conn.close()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def acquire(self) -> bool:
        """Become the active relay (or stay standby while another holds the lock)."""
        if not self.active:
            self.active = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
        return self.active

    def publish_batch(self) -> int:
        """Publish up to `batch` events; the number published (0: the outbox is drained)."""
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg) -> None:
            if err is not None:
                failures.append(err.str())

        with self.conn.transaction():
            rows = self.conn.execute(_SELECT, (self.batch,)).fetchall()
            if not rows:
                return 0
            produce, topic = self.producer.produce, self.topic
            for _seq, event_id, key, kind, payload in rows:
                while True:
                    try:
                        produce(topic, payload, key, on_delivery=delivered,
                                headers=[("id", event_id), ("type", kind)])
                        break
                    except BufferError:  # the local queue is full: let deliveries drain it
                        self.producer.poll(0.05)
            left = self.producer.flush(self.timeout_s)
            if failures or left:
                reason = failures[0] if failures else f"{left} event(s) not acknowledged within {self.timeout_s:g} s"
                raise RelayError(f"publishing to {topic!r} failed: {reason}; the events stay in the outbox")
            seqs = [r[0] for r in rows]
            self.conn.execute(_MARK, (min(seqs), max(seqs), seqs), prepare=False)
        self.published += len(rows)
        return len(rows)

    def drain(self) -> int:
        total = 0
        while n := self.publish_batch():
            total += n
        return total

    def wait(self, timeout_s: float) -> None:
        """Until an ingest commits events (or `timeout_s` passes). A notification that came
        during a batch already set the flag; otherwise wait for the socket and let a trivial
        query read what arrived (the handler sets the flag)."""
        if not self._woken.is_set():
            ready, _, _ = select.select([self.conn.pgconn.socket], [], [], timeout_s)
            if ready:
                self.conn.execute("SELECT 1")
        self._woken.clear()

    def prune(self) -> int:
        return self.conn.execute("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => %s)",
                                 (self.keep_published_s,)).rowcount

    def backlog(self) -> Backlog:
        return backlog(self.conn)

    def run(self, stop: threading.Event, idle_s: float = 1.0,
            on_batch: Callable[[int], None] | None = None) -> None:
        """Publish until `stop` is set: drain, then wait for the next commit. Kafka errors
        propagate (a supervisor restarts the relay; nothing is lost)."""
        while not stop.is_set():
            if not self.acquire():
                stop.wait(idle_s)
                continue
            self._woken.clear()
            n = self.drain()
            if on_batch:
                on_batch(n)
            if time.monotonic() - self._pruned_at > 60:
                self.prune()
                self._pruned_at = time.monotonic()
            if not n:
                self.wait(min(idle_s, 0.25))  # short, so `stop` is seen quickly

