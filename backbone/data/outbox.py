"""Ingest events: what each committed ingest announces, one event per dimension and series.

An event is an outbox row in Debezium's outbox event router shape:
- `id`: the event id (a UUID), which consumers deduplicate by;
- `aggregatetype`: the dimension (`bars`, `trades`, `macro`);
- `aggregateid`: `dimension:series` (a symbol; a calendar for macro), the Kafka message key,
  so the events of one series stay in order on one partition;
- `type`: `ingest.committed`;
- `payload`: the JSON below, which is the Kafka message value.

    {"event_id", "run_id", "dimension", "symbol", "rows_inserted", "rows_updated",
     "first_ts", "last_ts", "source", "committed_at"}

Only series whose rows changed get an event: re-ingesting the same file announces nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

EVENT_TYPE = "ingest.committed"


def ingest_events(run_id: str, dimension: str, changes: dict[str, list], source: str) -> list[dict[str, Any]]:
    """Outbox rows for one ingest's changes ({series: [inserted, updated, first, last]})."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    events = []
    for series in sorted(changes):
        inserted, updated, first, last = changes[series]
        if not inserted and not updated:
            continue
        event_id = str(uuid.uuid4())
        events.append({
            "id": event_id, "aggregatetype": dimension, "aggregateid": f"{dimension}:{series}", "type": EVENT_TYPE,
            "payload": {"event_id": event_id, "run_id": run_id, "dimension": dimension, "symbol": series,
                        "rows_inserted": inserted, "rows_updated": updated, "first_ts": _iso(first),
                        "last_ts": _iso(last), "source": source, "committed_at": now}})
    return events


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).isoformat()


@dataclass(frozen=True)
class Event:
    """An event as a consumer receives it; `position` is where it sits in its stream
    (topic, partition, offset on Kafka; "log", 0, seq on the bootstrap event log)."""
    id: str
    key: str
    type: str
    payload: dict[str, Any]
    topic: str
    partition: int
    offset: int

    @property
    def dimension(self) -> str:
        return self.payload.get("dimension", self.key.partition(":")[0])

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "key": self.key, "type": self.type, "topic": self.topic,
                           "partition": self.partition, "offset": self.offset, "payload": self.payload},
                          separators=(",", ":"))
