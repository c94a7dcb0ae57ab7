"""The bootstrap tier: an embedded store file, an in-process cache and event log.

Small on purpose: the store is SQLite (stdlib), the cache honours the same policy
(namespace, TTL, key budget) as the Redis cache, and the event log keeps ordered
offsets like a single-partition topic.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract import CachePolicy


class EmbeddedStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def connect(self, timeout_s: float = 5.0) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=timeout_s)


class InProcessCache:
    """TTL + LRU key budget under a namespace, like the institutional Redis policy."""

    def __init__(self, policy: CachePolicy, clock=time.monotonic):
        self.policy = policy
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def _key(self, key: str) -> str:
        return f"{self.policy.namespace}:{key}"

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            k = self._key(key)
            self._items.pop(k, None)
            self._items[k] = (self._clock() + self.policy.ttl_seconds, value)
            while len(self._items) > self.policy.max_keys:
                self._items.popitem(last=False)
                self.evictions += 1

    def get(self, key: str) -> Any | None:
        with self._lock:
            k = self._key(key)
            entry = self._items.get(k)
            if entry is None or entry[0] <= self._clock():
                self._items.pop(k, None)
                self.misses += 1
                return None
            self._items.move_to_end(k)
            self.hits += 1
            return entry[1]


@dataclass(frozen=True)
class Event:
    offset: int
    topic: str
    key: str
    value: bytes


class InProcessEventLog:
    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, key: str, value: bytes) -> int:
        with self._lock:
            log = self._events.setdefault(topic, [])
            log.append(Event(len(log), topic, key, value))
            return len(log) - 1

    def read(self, topic: str, from_offset: int = 0) -> list[Event]:
        with self._lock:
            return list(self._events.get(topic, [])[from_offset:])
