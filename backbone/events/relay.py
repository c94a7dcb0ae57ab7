"""The relay: outbox rows to the contract's events topic in `seq` order, behind one published
position that it advances once per acknowledged batch (no write per event).

- One active relay per database (a session advisory lock); another relay stands by.
- The position (`outbox_position`, row 'relay') is a seq: every committed outbox row at or
  below it is in Kafka.
- The frontier. A row's seq is drawn when it is inserted, not when its transaction commits,
  so a transaction still running can later commit a row below seqs already visible. The
  relay only reads up to a frontier below which nothing more can appear: the sequence's last
  value at some moment, once every transaction that was then writing to the outbox has
  ended. Every writer holds the outbox's ROW EXCLUSIVE lock from before it draws a seq until
  it ends, and `pg_locks` names them, so only outbox writers hold the frontier back (an
  ingest writes its events last, just before its commit), not other transactions.
- Per series, seq order is commit order: an ingest takes a lock per series bucket before it
  writes its events (`data.store_timescale`), so of two ingests with events for one series
  the second draws its seqs after the first committed.
- A batch: up to `batch` rows above the last one read, up to the frontier, each produced
  (key `aggregateid`, value `payload`, headers `id` and `type`). The next batch is asked
  for (on a second connection) before this one is produced, so PostgreSQL reads it
  meanwhile; Kafka acknowledges in the background (idempotent producer, acks=all), with no
  wait per batch, and the position moves past every batch whose messages are all
  acknowledged. A failure leaves it behind and those rows go again: delivery is
  at-least-once, and consumers deduplicate by event id.
- An ingest's NOTIFY (delivered at its commit) wakes the relay; it also looks every `idle_s`,
  and every few ms while the frontier waits for a writer to end.
- Rows at or below the position older than `keep_published_s` are pruned (Kafka is the log
  from there on).
"""
from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg
from confluent_kafka import KafkaError
from psycopg import pq
from psycopg.adapt import Transformer

from ..clients import kafka as kafka_client
from ..clients import timescale as timescale_client
from ..contract import Contract
from ..data.store_timescale import OUTBOX_CHANNEL
from ..errors import BackboneError, ConfigError

LOCK_KEY = 0x6261636B626F6E65 & 0x7FFFFFFFFFFFFFFF  # "backbone": one relay per database
# chosen by measurement (bench/events.py, ~420-byte JSON payloads): lz4 cuts the bytes on the
# wire 5.8x at the lowest CPU per message; linger 0 halves producer throughput while 5 and 20
# do the same
PRODUCER_SETTINGS = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
                     "batch.num.messages": 10_000, "queue.buffering.max.messages": 200_000}
WRITER_WAIT_S = 0.005  # how soon to look again while the frontier waits for a writer to end
ACK_WAIT_S = 0.002  # how soon to collect acknowledgements again while messages are in flight
_SELECT = ("SELECT seq, id, aggregateid, type, payload::text FROM outbox "
           "WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s")
_READ = (_SELECT % ("$1", "$2", "$3")).encode()  # the same, sent through libpq (_send_read)
# the transactions holding the outbox's ROW EXCLUSIVE lock: every one that has drawn a seq
# and not ended (a vxid never names another transaction)
_WRITERS = ("SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks WHERE locktype = 'relation' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND relation = 'outbox'::regclass AND mode = 'RowExclusiveLock' AND granted "
            "AND pid IS DISTINCT FROM pg_backend_pid()")
_POSITION = "SELECT seq FROM outbox_position WHERE name = 'relay'"
_START = "INSERT INTO outbox_position (name, seq) VALUES ('relay', 0) ON CONFLICT (name) DO NOTHING"
_ADVANCE = "UPDATE outbox_position SET seq = %s, updated_at = now() WHERE name = 'relay' AND seq < %s"
_PRUNE = ("DELETE FROM outbox WHERE seq <= (SELECT seq FROM outbox_position WHERE name = 'relay') "
          "AND created_at < now() - make_interval(secs => %s)")
_BACKLOG = ("SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox "
            "WHERE seq > coalesce((SELECT seq FROM outbox_position WHERE name = 'relay'), 0)")


class RelayError(BackboneError):
    pass


@dataclass
class Backlog:
    events: int                 # committed outbox rows above the published position
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


class _Batch:
    """Produced rows up to `last` (a seq), counting down as Kafka acknowledges them."""
    __slots__ = ("last", "size", "waiting", "failures")

    def __init__(self, last: int, size: int, failures: list[str]):
        self.last, self.size, self.waiting, self.failures = last, size, size, failures

    def delivered(self, err: KafkaError | None, _msg) -> None:
        self.waiting -= 1
        if err is not None:
            self.failures.append(err.str())


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
        try:
            self._last_seq = self._sequence()
        except BaseException:
            self.conn.close()
            raise
        # batches are read on a second connection, asked for ahead (see _send_read)
        self.reading = timescale_client.connect(contract.timescale, timeout_s, autocommit=True)
        self.producer = kafka_client.producer(contract.kafka, timeout_s, {**PRODUCER_SETTINGS, **(settings or {})},
                                              duty="relay")
        self.active = False
        self.published = 0  # events Kafka acknowledged
        self.position = 0
        self.frontier = 0
        self._pending: deque[tuple[int, frozenset[str]]] = deque(maxlen=32)  # (seq, writers then)
        self._inflight: deque[_Batch] = deque()  # produced, not yet all acknowledged, in seq order
        self._failures: list[str] = []
        self._read_to = 0  # the last seq read (at most the frontier)
        self._pruned_at = 0.0
        self._held = 0  # idle rounds in a row the frontier waited for a writer

    def _sequence(self) -> str:
        """The statement that reads the outbox sequence's last value (the last seq handed out,
        in any session). A sequence with CACHE above 1 lets a session draw a seq below that
        value later: no frontier would hold."""
        found = self.conn.execute(
            "SELECT s.seqrelid::regclass::text, s.seqcache, s.seqrelid::int8 FROM pg_sequence s "
            "WHERE s.seqrelid = pg_get_serial_sequence('outbox', 'seq')::regclass").fetchone()
        if found is None:
            raise ConfigError("the outbox's seq column has no sequence: run `backbone migrate apply`")
        name, cache, oid = found
        if cache != 1:
            raise ConfigError(f"the outbox's sequence {name} has CACHE {cache}; the relay needs CACHE 1 "
                              f"(ALTER SEQUENCE {name} CACHE 1)")
        return f"SELECT coalesce(pg_sequence_last_value({int(oid)}::oid::regclass), 0)"

    def close(self) -> None:
        try:
            if self.active and self._inflight and not self._failures:
                with contextlib.suppress(RelayError, psycopg.Error):  # else the next relay sends them again
                    self._acknowledged(wait=True)
            self.producer.flush(self.timeout_s)
        finally:
            self.reading.close()
            self.conn.close()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def acquire(self) -> bool:
        """Become the active relay (or stay standby while another holds the lock)."""
        if not self.active:
            self.active = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            if self.active:
                self.conn.execute(_START)
                self.position = self.frontier = self._read_to = self.conn.execute(_POSITION).fetchone()[0]
                self._pending.clear()
        return self.active

    def advance_frontier(self) -> int:
        """Move the frontier as far as is safe now; the frontier. The sequence's value is read
        before the writers: a writer that drew a seq at or below it is either listed or ended."""
        last = self.conn.execute(self._last_seq).fetchone()[0]
        writers = frozenset(self.conn.execute(_WRITERS).fetchone()[0])
        self._pending.append((last, writers))
        for seq, then in list(self._pending):
            if not (then & writers):  # all of them have ended: every row up to seq is visible
                self.frontier = max(self.frontier, seq)
        while self._pending and self._pending[0][0] <= self.frontier:
            self._pending.popleft()
        return self.frontier

    def _send_read(self, after: int, upto: int) -> None:
        """Ask for the next batch without waiting for it: PostgreSQL reads it while the relay
        produces the batch before (a reader thread instead contends for the GIL)."""
        self.reading.pgconn.send_query_params(_READ, [str(v).encode() for v in (after, upto, self.batch)])

    def _receive_read(self) -> list[tuple]:
        pgconn = self.reading.pgconn
        result = pgconn.get_result()
        while pgconn.get_result() is not None:  # the end of this query's results
            pass
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise RelayError(f"reading the outbox failed: {result.get_error_message()}")
        rows = Transformer.from_context(self.reading)
        rows.set_pgresult(result)
        return rows.load_rows(0, result.ntuples, tuple)

    def _batches(self, after: int, upto: int) -> Iterator[list[tuple]]:
        """The rows in (after, upto], a batch at a time, the next one asked for before this
        one is handed over."""
        while self.reading.pgconn.get_result() is not None:  # a read an error left behind
            pass
        if after >= upto:
            return
        self._send_read(after, upto)
        while True:
            rows = self._receive_read()
            more = len(rows) == self.batch
            if more:
                self._send_read(rows[-1][0], upto)
            if rows:
                yield rows
            if not more:
                return

    def _produce(self, rows: list[tuple]) -> None:
        batch = _Batch(rows[-1][0], len(rows), self._failures)
        produce, topic, delivered = self.producer.produce, self.topic, batch.delivered
        for _seq, event_id, key, kind, payload in rows:
            while True:
                try:
                    produce(topic, payload, key, on_delivery=delivered, headers=[("id", event_id), ("type", kind)])
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self.producer.poll(0.05)
        self._inflight.append(batch)
        self._read_to = batch.last

    def _acknowledged(self, wait: bool) -> None:
        """Serve delivery reports (until all are in if `wait`), then advance the position past
        the batches Kafka has acknowledged entirely, in order, and when none is left in
        flight, up to where the relay has read (no committed row holds a seq in between)."""
        if wait:
            left = self.producer.flush(self.timeout_s)
            if left and not self._failures:
                self._failures.append(f"{left} event(s) not acknowledged within {self.timeout_s:g} s")
        else:
            self.producer.poll(0)
        if self._failures:  # this relay is done: what it had not recorded goes again from the position
            raise RelayError(f"publishing to {self.topic!r} failed: {self._failures[0]}; "
                             "the events stay in the outbox")
        to = self.position
        while self._inflight and self._inflight[0].waiting == 0:
            done = self._inflight.popleft()
            to = done.last
            self.published += done.size
        if not self._inflight:
            to = self._read_to
        if to > self.position:
            self.conn.execute(_ADVANCE, (to, to))
            self.position = to

    def drain(self, settle: bool = True) -> int:
        """Publish everything below the frontier, moving it on until it stands still; the
        number of events sent (`published` counts those Kafka acknowledged). The next batch
        is read while Kafka acknowledges the ones before it; the position moves only past
        acknowledged batches. With `settle`, wait until Kafka has acknowledged everything
        (and the position is past it) before returning; `run` collects acknowledgements as
        they come. A relay that is not the active one publishes nothing."""
        if not self.acquire():
            return 0
        total = 0
        self._acknowledged(wait=False)
        frontier = self.advance_frontier()
        while True:
            for rows in self._batches(self._read_to, frontier):
                self._produce(rows)
                total += len(rows)
                self._acknowledged(wait=False)
            self._read_to = max(self._read_to, frontier)  # nothing more will appear at or below it
            if self.advance_frontier() == frontier:
                break
            frontier = self.frontier
        self._acknowledged(wait=settle)
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
            n = self.drain(settle=False)
            if on_batch:
                on_batch(n)
            if time.monotonic() - self._pruned_at > 60:
                self.prune()
                self._pruned_at = time.monotonic()
            self._held = self._held + 1 if self._pending else 0
            if n:
                continue
            if self._inflight:  # acknowledgements to collect (the next drain does) or a commit
                self.wait(ACK_WAIT_S)
            else:
                # short, so `stop` is seen quickly; while a writer holds the frontier back,
                # shorter (its commit may not notify), backing off if it takes long
                self.wait(min(idle_s, 0.25, WRITER_WAIT_S * 2 ** min(self._held, 8) if self._held else 1.0))
