"""Relay variants for bench/events.py: a relay with timers (a copy of `Relay.publish_batch`
with a clock around each step) and the alternatives measured against it, plus a
first-message poll prototype for the bridge. Prototypes only: nothing in backbone/ uses them."""
from __future__ import annotations

import time
from collections import defaultdict

import psycopg
from confluent_kafka import KafkaError

from backbone.events.relay import _SELECT, Relay, RelayError


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


def produce_counted(producer, topic: str, rows) -> list:
    """Produce outbox rows (seq, event_id, key, kind, payload) without waiting; the returned
    [unacknowledged, failures] is updated by the delivery reports as they arrive."""
    state = [len(rows), []]

    def delivered(err, _msg) -> None:
        state[0] -= 1
        if err is not None:
            state[1].append(err.str())

    for _seq, event_id, key, kind, payload in rows:
        while True:
            try:
                producer.produce(topic, payload, key, on_delivery=delivered, headers=[("id", event_id), ("type", kind)])
                break
            except BufferError:
                producer.poll(0.05)
    return state


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
                    state = produce_counted(self.producer, self.topic, rows)
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
            state = produce_counted(self.producer, self.topic, rows)
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
