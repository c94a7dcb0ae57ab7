"""The relay: outbox rows to the contract's events topic, in order, behind one published
position that it advances once per batch (no write per event).

- One active relay per database (a session advisory lock); another relay stands by.
- The position (`outbox_position`, one row) is an (xid, seq) pair: every outbox row at or
  below it is in Kafka. Each row records its inserting transaction's id (`xid`, a column
  default), and the relay reads rows above the position in (xid, seq) order, but only rows
  whose transaction is older than every transaction still running
  (`pg_snapshot_xmin(pg_current_snapshot())`): no transaction can still commit a row below
  what it read, so advancing past it never skips an event committed late (docs/events.md).
- A batch: read up to `batch` rows, produce each (key `aggregateid`, value `payload`,
  headers `id` and `type`), read the next batch while Kafka acknowledges (idempotent
  producer, acks=all), then advance the position (one row updated). A failure before the
  advance leaves the position behind and the rows go again: delivery is at-least-once, and
  consumers deduplicate by event id.
- An ingest's NOTIFY (delivered at its commit) wakes the relay; it also looks every `idle_s`.
- Housekeeping, off the publishing path: `settle` stamps `published_at` in bulk on the rows
  the position has passed (every few seconds while idle, and on close); published rows
  older than `keep_published_s` are pruned (Kafka is the log from there on).
"""
from __future__ import annotations

import contextlib
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
# the transactions that may still commit outbox rows are at or above the snapshot's xmin
_HORIZON = "(SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint)"
# one statement, one snapshot: the rows above the position whose transactions are all finished
_SELECT = ("SELECT xid, seq, id, aggregateid, type, payload::text FROM outbox "
           f"WHERE (xid, seq) > (%s, %s) AND xid < {_HORIZON} ORDER BY xid, seq LIMIT %s")
_POSITION = "SELECT xid, seq FROM outbox_position WHERE name = 'relay'"
_START = ("INSERT INTO outbox_position (name, xid, seq, published_at, settled_xid, settled_seq) "
          "VALUES ('relay', 0, 0, now(), 0, 0) ON CONFLICT (name) DO NOTHING")
_ADVANCE = "UPDATE outbox_position SET xid = %s, seq = %s, published_at = now() WHERE name = 'relay'"
# published_at in bulk for the rows the position passed since the last settle (one range of
# the (xid, seq) index), then the settled mark moves up to the position
_SETTLE = ("UPDATE outbox o SET published_at = p.published_at FROM outbox_position p WHERE p.name = 'relay' "
           "AND (o.xid, o.seq) > (p.settled_xid, p.settled_seq) AND (o.xid, o.seq) <= (p.xid, p.seq)")
_SETTLED = "UPDATE outbox_position SET settled_xid = xid, settled_seq = seq WHERE name = 'relay'"
_PRUNE = ("DELETE FROM outbox o USING outbox_position p WHERE p.name = 'relay' "
          "AND (o.xid, o.seq) <= (p.settled_xid, p.settled_seq) AND o.published_at < now() - make_interval(secs => %s)")
_BACKLOG = ("SELECT count(*), extract(epoch FROM now() - min(o.created_at))::float8 FROM outbox o "
            "WHERE (o.xid, o.seq) > (coalesce((SELECT xid FROM outbox_position WHERE name = 'relay'), -1), "
            "coalesce((SELECT seq FROM outbox_position WHERE name = 'relay'), -1))")
SETTLE_EVERY_S = 5.0


class RelayError(BackboneError):
    pass


@dataclass
class Backlog:
    events: int                 # outbox rows above the published position
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
    count, age = conn.execute(_BACKLOG).fetchone()
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
        self._pruned_at = self._settled_at = 0.0
        self.timers: dict[str, float] = {"read": 0.0, "produce": 0.0, "wait for acks": 0.0, "advance": 0.0}
        self.batches = 0

    def close(self) -> None:
        try:
            self.producer.flush(self.timeout_s)
            if self.active:
                with contextlib.suppress(psycopg.Error):  # housekeeping: the next relay settles what is left
                    self.settle()
        finally:
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

    def position(self) -> tuple[int, int]:
        """The published position (xid, seq); made at (0, 0) if absent."""
        found = self.conn.execute(_POSITION).fetchone()
        if found is None:
            self.conn.execute(_START)
            found = self.conn.execute(_POSITION).fetchone()
        return found

    def _read(self, after: tuple[int, int]) -> list[tuple]:
        started = time.perf_counter()
        rows = self.conn.execute(_SELECT, (*after, self.batch)).fetchall()
        self.timers["read"] += time.perf_counter() - started
        return rows

    def _produce(self, rows: list[tuple]) -> list[str]:
        """Produce a batch without waiting; the returned list collects delivery failures."""
        started = time.perf_counter()
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg) -> None:
            if err is not None:
                failures.append(err.str())

        produce, topic = self.producer.produce, self.topic
        for _xid, _seq, event_id, key, kind, payload in rows:
            while True:
                try:
                    produce(topic, payload, key, on_delivery=delivered, headers=[("id", event_id), ("type", kind)])
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self.producer.poll(0.05)
        self.timers["produce"] += time.perf_counter() - started
        return failures

    def _acknowledged(self, failures: list[str]) -> None:
        started = time.perf_counter()
        left = self.producer.flush(self.timeout_s)
        self.timers["wait for acks"] += time.perf_counter() - started
        if failures or left:
            reason = failures[0] if failures else f"{left} event(s) not acknowledged within {self.timeout_s:g} s"
            raise RelayError(f"publishing to {self.topic!r} failed: {reason}; the events stay in the outbox")

    def _advance(self, to: tuple[int, int]) -> None:
        started = time.perf_counter()
        self.conn.execute(_ADVANCE, to)
        self.timers["advance"] += time.perf_counter() - started

    def publish_batch(self) -> int:
        """Publish up to `batch` events; the number published (0: nothing is ready)."""
        rows = self._read(self.position())
        if rows:
            self._acknowledged(self._produce(rows))
            self._advance(rows[-1][:2])
            self.published += len(rows)
            self.batches += 1
        return len(rows)

    def drain(self) -> int:
        """Publish until nothing is ready. The next batch is read while Kafka acknowledges the
        current one; the position moves only past acknowledged batches."""
        total = 0
        rows = self._read(self.position())
        while rows:
            failures = self._produce(rows)
            following = self._read(rows[-1][:2])  # overlaps the acknowledgements
            self._acknowledged(failures)
            self._advance(rows[-1][:2])
            total += len(rows)
            self.published += len(rows)
            self.batches += 1
            rows = following
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

    def settle(self) -> int:
        """Stamp published_at on the rows the position passed since the last settle, in bulk
        (one statement); the number stamped."""
        with self.conn.transaction():
            stamped = self.conn.execute(_SETTLE).rowcount
            self.conn.execute(_SETTLED)
        self._settled_at = time.monotonic()
        return stamped

    def prune(self) -> int:
        return self.conn.execute(_PRUNE, (self.keep_published_s,)).rowcount

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
            if not n and time.monotonic() - self._settled_at > SETTLE_EVERY_S:
                self.settle()  # while idle: housekeeping never delays a waiting event
            if time.monotonic() - self._pruned_at > 60:
                self.settle()
                self.prune()
                self._pruned_at = time.monotonic()
            if not n:
                self.wait(min(idle_s, 0.25))  # short, so `stop` is seen quickly

