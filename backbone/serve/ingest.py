"""Scheduled ingest jobs: a drop directory, or generated rows, every `interval_s` plus up
to `jitter_s` (so jobs started together drift apart instead of hitting the store together).

Drop directory: each regular file is ingested once, identified by its content (sha256). The
checksum is recorded in the ingest's own transaction, so a file is ingested exactly once even
across restarts and crashes; a file whose content was seen before is skipped whatever its
name. Hidden files and `*.tmp` / `*.part` are skipped: write a file under such a name and
rename it into place when complete. A file that cannot be loaded (unreadable format, bad
rows: all or nothing) is reported as the job's last error and left alone until its content
changes; the other files carry on.

Generated: fresh synthetic rows each run, moved in time so the newest row is now (trades) or
today (bars, macro: whole days, keeping their time of day), so the freshness is real.

At shutdown the file in flight finishes; once the supervisor signals `abort` (half the
shutdown bound) it is abandoned mid-read, and its transaction rolls back.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..errors import BackboneError, StoppedOnRequest
from .supervisor import TaskContext

if TYPE_CHECKING:
    from ..data.api import Backbone
    from .metrics import ServeMetrics
    from .schedule import Job

SKIPPED_SUFFIXES = (".tmp", ".part")
CHUNK = 1 << 20
CHECK_EVERY = 1024  # records between looks at the abort flag


class DropDirMissing(BackboneError):
    pass


class IngestInterrupted(StoppedOnRequest):
    """Shutdown overran: the ingest in flight stopped reading, its transaction rolled back."""


def interruptible(records: Iterable, abort) -> Iterator:
    for i, record in enumerate(records):
        if i % CHECK_EVERY == 0 and abort.is_set():
            raise IngestInterrupted("stopped at shutdown")
        yield record


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def candidates(directory: Path) -> list[Path]:
    """The files of a drop directory that are ready to ingest, by name."""
    if not directory.is_dir():
        raise DropDirMissing(f"drop_dir {directory}: {'not a directory' if directory.exists() else 'not found'}")
    return sorted(p for p in directory.iterdir()
                  if not p.name.startswith(".") and not p.name.endswith(SKIPPED_SUFFIXES) and p.is_file())


class IngestJob:
    def __init__(self, job: Job, bb: Backbone, metrics: ServeMetrics):
        self.job, self.bb, self.metrics = job, bb, metrics
        self.checksums: dict[tuple[str, int, int], str] = {}  # (name, size, mtime) -> sha256: hash once
        self.done: set[str] = set()           # checksums ingested (here or before)
        self.refused: dict[str, str] = {}     # checksum -> why it could not be loaded
        self.totals = ({"ingested": 0, "skipped": 0, "refused": 0, "rows": 0} if job.drop_dir is not None
                       else {"batches": 0, "rows": 0})

    async def run(self, ctx: TaskContext) -> None:
        once = self.drop_dir_once if self.job.drop_dir is not None else self.generated_once
        while True:
            await ctx.to_thread(once, ctx)
            ctx.ran(**self.totals)
            if not await ctx.sleep(self.job.interval_s + random.uniform(0, self.job.jitter_s)):
                return

    def _ingest(self, ctx: TaskContext, records: Callable[[], Iterable], source: str, numbered: bool,
                checksum: str | None = None):
        from ..data.api import IngestRejected
        from ..data.files import FileFormatError
        dim, started = self.job.dimension, time.perf_counter()
        try:
            result = self.bb.ingest(dim, lambda: interruptible(records(), ctx.abort), source=source,
                                    numbered=numbered, checksum=checksum)
        except (IngestRejected, FileFormatError) as exc:  # the input's fault: nothing written
            self.metrics.ingested(dim, getattr(exc, "result", None), "rejected", time.perf_counter() - started)
            raise
        except IngestInterrupted:
            self.metrics.ingested(dim, None, "interrupted", time.perf_counter() - started)
            raise
        except Exception:
            self.metrics.ingested(dim, None, "failed", time.perf_counter() - started)
            raise
        self.metrics.ingested(dim, result, "ok", result.seconds)
        self.totals["rows"] += result.received
        return result

    # --- drop directory -------------------------------------------------------------------------

    def drop_dir_once(self, ctx: TaskContext) -> None:
        from ..data.api import IngestRejected
        from ..data.files import FileFormatError, read_records
        seen: dict[tuple[str, int, int], str] = {}
        for path in candidates(self.job.drop_dir):
            if ctx.stop.is_set():
                return  # the rest waits for the next start
            try:
                stat = path.stat()
                key = (path.name, stat.st_size, stat.st_mtime_ns)
                checksum = seen[key] = self.checksums.get(key) or sha256_of(path)
            except FileNotFoundError:
                continue  # taken away while we looked
            if checksum in self.done or checksum in self.refused:
                continue
            if self.bb.ingested(checksum):
                self.done.add(checksum)
                self._count("skipped")
                continue
            try:
                self._ingest(ctx, lambda: read_records(path, self.job.dimension), path.name, True, checksum)
            except (FileFormatError, IngestRejected) as exc:
                self.refused[checksum] = str(exc)
                self._count("refused")
                ctx.problem(f"{path.name} refused, left in place until its content changes: {exc}")
                continue
            self.done.add(checksum)
            self._count("ingested")
        self.checksums = seen  # forget files that went away
        current = set(seen.values())
        self.done &= current
        self.refused = {c: why for c, why in self.refused.items() if c in current}

    def _count(self, outcome: str) -> None:
        self.totals[outcome] += 1
        self.metrics.drop_files.labels(self.job.name, outcome).inc()

    # --- generated rows -------------------------------------------------------------------------

    def generated_once(self, ctx: TaskContext) -> None:
        from ..data.generate import generate
        spec, dim = self.job.generate, self.job.dimension
        seed = random.SystemRandom().randrange(1, 2 ** 31)

        def rows():
            return generate(dim, spec.rows, spec.symbols, seed)
        newest = deque(interruptible(rows(), ctx.abort), maxlen=1)[0].ts  # rows come out in time order
        shift = time_shift(dim, newest, dt.datetime.now(dt.timezone.utc))
        self._ingest(ctx, lambda: (dataclasses.replace(r, ts=r.ts + shift) for r in rows()),
                     f"serve job {self.job.name}: {spec.rows} generated rows, seed {seed}", False)
        self.totals["batches"] += 1


def time_shift(dimension: str, newest: dt.datetime, now: dt.datetime) -> dt.timedelta:
    """How far to move generated rows so the newest is recent but not in the future: to now
    for trades; by whole days for bars and macro (a bar stays at midnight, a release at its hour)."""
    if dimension == "trades":
        return now - newest
    days = (now.date() - newest.date()).days
    if newest + dt.timedelta(days=days) > now:
        days -= 1
    return dt.timedelta(days=days)
