"""The relay with a clock around each step, for bench/events.py's breakdown of where a
drain's time goes (the relay itself carries no timers)."""
from __future__ import annotations

import json
import time

from backbone.events.relay import Relay


class TimedRelay(Relay):
    """`Relay` whose frontier reads, batch reads, produce loops, delivery waits and
    position advances are timed (seconds, summed over the run)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timers = {"frontier (sequence + pg_locks)": 0.0, "ask for the next batch": 0.0,
                       "wait for and load a batch": 0.0, "produce": 0.0,
                       "deliveries + advance": 0.0, "wait for acks (flush at the end)": 0.0}
        self.batches = 0

    def _timed(self, step: str, fn, *args):
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timers[step] += time.perf_counter() - started

    def advance_frontier(self) -> int:
        return self._timed("frontier (sequence + pg_locks)", super().advance_frontier)

    def _send_read(self, after, upto):
        return self._timed("ask for the next batch", super()._send_read, after, upto)

    def _receive_read(self):
        return self._timed("wait for and load a batch", super()._receive_read)

    def _produce(self, rows):
        self.batches += 1
        return self._timed("produce", super()._produce, rows)

    def _acknowledged(self, wait):
        step = "wait for acks (flush at the end)" if wait else "deliveries + advance"
        return self._timed(step, super()._acknowledged, wait)


class ProducedAtRelay(Relay):
    """`Relay` that notes when it handed each event to the producer, by run id (the latency
    run's events are one per ingest)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.produced_at: dict[str, float] = {}

    def _produce(self, rows):
        super()._produce(rows)
        now = time.perf_counter()
        for row in rows:
            self.produced_at[json.loads(row[4]).get("run_id")] = now
