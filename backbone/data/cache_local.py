"""The query cache's in-process backend: the bootstrap tier's cache (and the institutional
tier's without a redis section), with the same semantics as `cache.RedisBackend` in one
process: generations, entries with a TTL, the key budget, single-flight locks."""
from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict


class LocalBackend:
    """The bootstrap tier's cache: in this process, with the same semantics."""

    errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gens: dict[str, int] = {}
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._locks: dict[str, str] = {}

    def get(self, gens: list[str], prefix: str) -> tuple[str | None, str]:
        with self._lock:
            key = prefix + ":" + ".".join(str(self._gens.get(g, 0)) for g in gens)
            return self._live(key), key

    def _live(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def get_key(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def set(self, key: str, index: str, value: str, ttl_ms: int, max_keys: int, ttl_max_ms: int = 0,
            stats: str | None = None) -> int:
        with self._lock:
            now = time.monotonic()
            for k in [k for k, (_, exp) in self._entries.items() if exp <= now]:
                del self._entries[k]
            self._entries[key] = (value, now + ttl_ms / 1000)
            self._entries.move_to_end(key)
            evicted = 0
            while len(self._entries) > max_keys:
                self._entries.popitem(last=False)
                evicted += 1
            return evicted

    def add_reads(self, stats: str, hits: int, misses: int) -> None:
        pass  # nothing shared: `Backbone.close` keeps the bootstrap tier's totals in the store

    def shared_stats(self, stats: str) -> None:
        return None  # nothing shared: the cache lives in this process, its client counts alone

    def lock(self, key: str, timeout_s: float) -> str | None:
        with self._lock:
            if key in self._locks:
                return None
            token = f"{random.getrandbits(64):x}"
            self._locks[key] = token
            return token

    def unlock(self, key: str, token: str) -> None:
        with self._lock:
            if self._locks.get(key) == token:
                del self._locks[key]

    def bump(self, gens: list[str]) -> None:
        with self._lock:
            for gen in gens:
                self._gens[gen] = self._gens.get(gen, 0) + 1
