"""The content of a Redis database as digests the backup drill compares: one per key (its
type, whether it has a TTL, and its value in a canonical order), read with pipelined
round trips, and one for the whole database. Computed by the client the same way on both
servers: Redis 7 refuses DEBUG DIGEST by default, and DUMP depends on each server's
encoding settings."""
from __future__ import annotations

import hashlib
import struct
import time
from typing import Any

import redis

from .backup import BackupDrillError

_BATCH = 500  # keys per pipelined round trip
KeyDigests = dict[bytes, tuple[bytes, float | None]]  # key -> (sha256 of type + TTL presence + value, expires at)


def _key_digests(client: redis.Redis, deadline: float, what: str) -> KeyDigests:
    keys: set[bytes] = set()  # SCAN may return a key twice (while the table rehashes)
    for key in client.scan_iter(count=1000):
        keys.add(_b(key))
        if len(keys) % 10_000 == 0 and time.monotonic() > deadline:
            raise BackupDrillError(f"scanning {what} did not finish within the timeout")
    found: KeyDigests = {}
    ordered = sorted(keys)
    for i in range(0, len(ordered), _BATCH):
        if time.monotonic() > deadline:
            raise BackupDrillError(f"the digest of {what} did not finish within the timeout")
        batch = ordered[i:i + _BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.type(key)
            pipe.pttl(key)
        meta = pipe.execute()
        now = time.time()
        kinds = [_b(meta[2 * j]).decode() for j in range(len(batch))]
        pipe = client.pipeline(transaction=False)
        for key, kind in zip(batch, kinds):
            _FETCH.get(kind, lambda p, k: p.dump(k))(pipe, key)  # DUMP: a module type
        for j, (key, kind, value) in enumerate(zip(batch, kinds, pipe.execute())):
            ttl_ms = meta[2 * j + 1]
            if kind == "none" or ttl_ms == -2:
                continue  # deleted or expired since the SCAN
            # TTL presence only: the remaining time differs between any two readings
            h = hashlib.sha256(_frames([kind.encode(), b"ttl" if ttl_ms >= 0 else b"-", _canonical(kind, value)]))
            found[key] = (h.digest(), now + ttl_ms / 1000 if ttl_ms >= 0 else None)
    return found


_FETCH = {"string": lambda p, k: p.get(k), "hash": lambda p, k: p.hgetall(k),
          "list": lambda p, k: p.lrange(k, 0, -1), "set": lambda p, k: p.smembers(k),
          "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True), "stream": lambda p, k: p.xrange(k),
          "none": lambda p, k: p.echo(b"")}  # "none": a reply anyway, so replies stay aligned with keys


def _canonical(kind: str, value: Any) -> bytes:
    """The value as bytes, independent of the server's encoding and reply order."""
    if kind == "hash":
        return _frames([_frames(list(fv)) for fv in sorted((_b(f), _b(v)) for f, v in value.items())])
    if kind == "set":
        return _frames(sorted(_b(m) for m in value))
    if kind == "list":
        return _frames([_b(v) for v in value])
    if kind == "zset":  # ZRANGE's order (score, then member) is already canonical
        return _frames([_frames([_b(m), repr(float(s)).encode()]) for m, s in value])
    if kind == "stream":  # entry ids and fields, not consumer groups
        return _frames([_frames([_b(i), *(_b(x) for fv in fields.items() for x in fv)]) for i, fields in value])
    return _b(value or b"")  # string; a module type's DUMP (same server version on both sides)


def _combine(digests: dict[bytes, bytes]) -> str:
    h = hashlib.sha256()
    for key in sorted(digests):
        h.update(_frames([key, digests[key]]))
    return h.hexdigest()


def _frames(parts: list[bytes]) -> bytes:
    # length-prefixed, so ("ab", "c") and ("a", "bc") differ
    return b"".join(struct.pack(">Q", len(p)) + p for p in parts)


def _b(value: Any) -> bytes:  # replies are bytes, or str when the contract's URL asks to decode
    return value if isinstance(value, bytes) else str(value).encode()
