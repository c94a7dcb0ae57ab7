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
    """Metadata, a connection to every partition leader and the idempotent producer id
    before the clock starts (a running relay has all of them): one message per partition."""
    partitions = producer.list_topics(topic, timeout=10).topics[topic].partitions
    for p in partitions:
        producer.produce(topic, b"{}", b"warm-up", partition=p)
    if producer.flush(10):
        raise RuntimeError("warm-up messages not acknowledged")


# --- the relay, with timers, and the alternatives ---------------------------------------

# the relay's SELECT ordered like the outbox_pending index (published_at, seq): equal to
# ORDER BY seq under `published_at IS NULL`, but the planner then always reads the index
# from its NULL end instead of walking the primary key past every published row
SELECT_BY_PENDING = _SELECT.replace("ORDER BY seq", "ORDER BY published_at, seq")
MARK = {  # how a batch is marked published: relay.py's statement, and the alternatives
    "update": "UPDATE outbox SET published_at = now() WHERE seq = ANY(%(seqs)s)",
    # a seq range on the primary key as well: from stale statistics the planner may otherwise
    # pick outbox_pending for `seq = ANY(...)` alone and read that whole index for every batch
    "update-range": "UPDATE outbox SET published_at = now() "
                    "WHERE seq BETWEEN %(lo)s AND %(hi)s AND seq = ANY(%(seqs)s)",
    "update-unnest": "UPDATE outbox o SET published_at = now() "
                     "FROM unnest(%(seqs)s::bigint[]) u(seq) WHERE o.seq = u.seq",
    "delete": "DELETE FROM outbox WHERE seq BETWEEN %(lo)s AND %(hi)s AND seq = ANY(%(seqs)s)",
}


class TimedRelay(Relay):
    """`Relay.publish_batch` step by step with a clock around each step (select, produce,
    flush, update, commit). Options prototype alternatives without touching backbone/:
    `tuned`: the SELECT ordered by the pending index and the marking statement never
    server-prepared (psycopg prepares a statement on its 5th run, after which PostgreSQL may
    switch to a generic plan); `mark`: a statement of MARK (relay.py's is "update")."""

    def __init__(self, *args, tuned: bool = False, mark: str = "update", **kwargs):
        if mark not in MARK:
            raise ValueError(f"mark must be one of {', '.join(MARK)}")
        super().__init__(*args, **kwargs)
        self.producer_settings = kwargs.get("settings") or {}
        self.tuned, self.mark = tuned, mark
        self.select_sql = SELECT_BY_PENDING if tuned else _SELECT
        self.timers: dict[str, float] = defaultdict(float)
        self.batches = 0

    def _mark(self, seqs: list[int]) -> None:
        params = {"seqs": seqs, "lo": min(seqs), "hi": max(seqs)}
        self.conn.execute(MARK[self.mark], params, prepare=False if self.tuned else None)

    def publish_batch(self) -> int:
        clock, t = time.perf_counter, self.timers
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg) -> None:
            if err is not None:
                failures.append(err.str())

        t0 = clock()
        with self.conn.transaction():
            rows = self.conn.execute(self.select_sql, (self.batch,)).fetchall()
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
            self._mark([r[0] for r in rows])
            t4 = clock()
            t["update"] += t4 - t3
        t["commit"] += clock() - t4
        self.batches += 1
        self.published += len(rows)
        return len(rows)


class PipelinedRelay(TimedRelay):
    """Prototype: no flush per batch. Each transaction selects the next batch after the
    highest seq already produced, produces it, and marks published the earlier batches
    whose acknowledgements have all arrived, so database work overlaps Kafka's round trips.
    Rows in flight are not locked across transactions (the advisory lock already makes
    this relay the only one); a crash leaves them unpublished and they go again, as today.
    A pass that started from seq 0 and found nothing ends the drain, so an event that
    committed late with a lower seq is not skipped. Counts acknowledgements, so it cannot
    run with delivery.report.only.error."""

    def drain(self) -> int:
        if str(self.producer_settings.get("delivery.report.only.error", "")).lower() in ("true", "1"):
            raise ValueError("the pipelined relay counts acknowledgements: not with delivery.report.only.error")
        clock, t = time.perf_counter, self.timers
        select = SELECT_BY_PENDING.replace("WHERE", "WHERE seq > %s AND").replace(" FOR UPDATE", "")
        inflight: list[tuple[list[int], list]] = []  # (seqs, [unacknowledged, failures])
        after, total = 0, 0
        while True:
            t0 = clock()
            with self.conn.transaction():
                rows = self.conn.execute(select, (after, self.batch), prepare=False).fetchall()
                t1 = clock()
                t["select"] += t1 - t0
                if rows:
                    state = [len(rows), []]

                    def delivered(err, _msg, state=state) -> None:
                        state[0] -= 1
                        if err is not None:
                            state[1].append(err.str())

                    produce, topic = self.producer.produce, self.topic
                    for _seq, event_id, key, kind, payload in rows:
                        while True:
                            try:
                                produce(topic, payload, key, on_delivery=delivered,
                                        headers=[("id", event_id), ("type", kind)])
                                break
                            except BufferError:
                                self.producer.poll(0.05)
                    inflight.append(([r[0] for r in rows], state))
                    after = rows[-1][0]
                    self.producer.poll(0)
                    t["produce"] += clock() - t1
                else:
                    left = self.producer.flush(self.timeout_s)
                    t["flush"] += clock() - t1
                    if left:
                        raise RelayError(f"{left} event(s) not acknowledged within {self.timeout_s:g} s")
                t2 = clock()
                done = [b for b in inflight if b[1][0] == 0]
                failed = [f for b in done for f in b[1][1]]
                if failed:
                    raise RelayError(f"publishing failed: {failed[0]}; the events stay in the outbox")
                if done:
                    inflight = [b for b in inflight if b[1][0] != 0]
                    seqs = [s for b in done for s in b[0]]
                    self._mark(seqs)
                    total += len(seqs)
                    self.batches += 1
                t3 = clock()
                t["update"] += t3 - t2
            t["commit"] += clock() - t3
            if not rows and not inflight:
                if after == 0:
                    break
                after = 0  # one more pass from the start: nothing committed late is left behind
        self.published += total
        return total


class ThreadedRelay(TimedRelay):
    """Prototype: a second connection, on a thread, reads the next batches (no row locks,
    after the highest seq read) and marks the acknowledged ones, while this thread only
    produces. Measures how much of the database work can hide behind the produce loop;
    it leaves out the final pass for events that commit late with a lower seq."""

    def __init__(self, contract, *args, **kwargs):
        super().__init__(contract, *args, **kwargs)
        self.dsn = contract.timescale.dsn()

    def drain(self) -> int:
        import queue
        import threading
        clock, t = time.perf_counter, self.timers
        select = SELECT_BY_PENDING.replace("WHERE", "WHERE seq > %s AND").replace(" FOR UPDATE", "")
        batches: queue.Queue = queue.Queue(maxsize=2)
        acked: queue.Queue = queue.Queue()
        reader = psycopg.connect(self.dsn, autocommit=True)
        marked = [0]

        def mark_acked() -> None:
            seqs: list[int] = []
            while not acked.empty():
                seqs.extend(acked.get_nowait())
            if seqs:
                reader.execute(MARK[self.mark], {"seqs": seqs, "lo": min(seqs), "hi": max(seqs)}, prepare=False)
                marked[0] += len(seqs)

        def read() -> None:
            after = 0
            try:
                while True:
                    t0 = clock()
                    mark_acked()
                    t1 = clock()
                    rows = reader.execute(select, (after, self.batch), prepare=False).fetchall()
                    t["db thread: mark"] += t1 - t0
                    t["db thread: select"] += clock() - t1
                    batches.put(rows)
                    if not rows:
                        return
                    after = rows[-1][0]
            except Exception as exc:  # handed to the producing thread
                batches.put(exc)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        inflight: list[tuple[list[int], list]] = []
        while True:
            t0 = clock()
            rows = batches.get()
            t1 = clock()
            t["wait for rows"] += t1 - t0
            if isinstance(rows, Exception):
                raise rows
            if not rows:
                break
            state = [len(rows), []]

            def delivered(err, _msg, state=state) -> None:
                state[0] -= 1
                if err is not None:
                    state[1].append(err.str())

            produce, topic = self.producer.produce, self.topic
            for _seq, event_id, key, kind, payload in rows:
                while True:
                    try:
                        produce(topic, payload, key, on_delivery=delivered, headers=[("id", event_id), ("type", kind)])
                        break
                    except BufferError:
                        self.producer.poll(0.05)
            inflight.append(([r[0] for r in rows], state))
            self.producer.poll(0)
            for batch in [b for b in inflight if b[1][0] == 0]:
                if batch[1][1]:
                    raise RelayError(f"publishing failed: {batch[1][1][0]}")
                acked.put(batch[0])
            inflight = [b for b in inflight if b[1][0] != 0]
            self.batches += 1
            t["produce"] += clock() - t1
        t0 = clock()
        left = self.producer.flush(self.timeout_s)
        t["flush"] += clock() - t0
        if left or any(b[1][1] for b in inflight):
            raise RelayError("publishing failed")
        for batch in inflight:
            acked.put(batch[0])
        thread.join()
        t0 = clock()
        mark_acked()
        t["final mark"] += clock() - t0
        reader.close()
        self.published += marked[0]
        return marked[0]


# --- the bridge, returning on the first event ---------------------------------------------

def quick_poll(bridge, handler, timeout_s: float = 0.5, max_events: int = 500) -> int:
    """Prototype for `KafkaBridge.poll`: block only for the first message
    (`Consumer.poll(timeout)`), then take what else is already fetched without waiting
    (`consume(n, 0)`). `Consumer.consume(n, timeout)` waits the whole timeout unless n
    messages arrive, so one event polled with timeout 0.5 s is handed over ~0.5 s late."""
    from confluent_kafka import KafkaException

    from backbone.events.bridge import _event
    first = bridge.consumer.poll(timeout_s)
    if first is None:
        return 0
    messages = [first, *bridge.consumer.consume(max_events - 1, 0)] if max_events > 1 else [first]
    handed = 0
    for msg in messages:
        if msg.error():
            if msg.error().fatal():
                raise KafkaException(msg.error())
            continue
        bridge._hand(_event(msg), handler)
        handed += 1
    if handed:
        bridge.consumer.commit(asynchronous=False)
    return handed
