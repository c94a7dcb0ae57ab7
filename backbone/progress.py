"""Progress of long work as plain lines, for logs as much as for terminals.

A CI log, `make test`'s setup or a redirected `tier switch` has no terminal for a live bar,
and silence there looks like a hang: every long step says a line at most every
`every_s()` seconds (1 s on a terminal, 5 s off one, or $BACKBONE_PROGRESS_S). Standard
library only, so concepts and the CLI alike can use it.
"""
from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

TTY_EVERY_S = 1.0
PLAIN_EVERY_S = 5.0


def every_s(stream=None) -> float:
    """How often a progress line may be said on `stream` (stderr by default)."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        tty = False
    return TTY_EVERY_S if tty else _configured(os.environ.get("BACKBONE_PROGRESS_S"))


def _configured(raw: str | None) -> float:
    try:
        value = float(raw) if raw else PLAIN_EVERY_S
    except ValueError:  # progress is never worth failing the work for
        return PLAIN_EVERY_S
    return value if math.isfinite(value) and value >= 0 else PLAIN_EVERY_S


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Throttle:
    """True at most once per `every` seconds of `clock`; the first time one interval after
    the start, so short work says nothing until its final line."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every, clock
        self.last = clock()

    def due(self) -> bool:
        now = self.clock()
        if now - self.last < self.every:
            return False
        self.last = now
        return True


class Meter:
    """Work done out of a total, said as one line when the throttle allows and once at the
    end. An `estimate` (a count taken while writes go on) is said as "about N", and once
    the work outgrows it the line drops the total: done never passes it, nor 100 %."""

    def __init__(self, label: str, total: int | None, say: Callable[[str], None], unit: str = "rows",
                 estimate: bool = False, every: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.say, self.unit, self.estimate = label, total, say, unit, estimate
        self.clock, self.count, self.started = clock, 0, clock()
        self.throttle = Throttle(every_s() if every is None else every, clock)

    def add(self, n: int) -> None:
        self.update(self.count + n)

    def update(self, count: int) -> None:
        self.count = count
        if self.throttle.due():
            self.say(self.line())

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.count / elapsed
        about = "about " if self.estimate else ""
        if self.total is None:
            done = f"{self.count:,} {self.unit}"
        elif self.count <= self.total:
            percent = 100 * self.count // self.total if self.total else 100
            done = f"{self.count:,}/{about}{self.total:,} {self.unit} ({percent}%)"
        else:
            done = f"{self.count:,} {self.unit} (more than the {about}{self.total:,} counted at the start)"
        eta = ""
        if rate and self.total is not None and self.total > self.count:
            eta = f", {'about ' if self.estimate else ''}{(self.total - self.count) / rate:.0f} s left"
        return f"{self.label}: {done}, {rate:,.0f} {self.unit}/s{eta}"

    def done(self) -> None:
        elapsed = max(self.clock() - self.started, 1e-9)
        self.say(f"{self.label}: {self.count:,} {self.unit} in {elapsed:.1f} s, "
                 f"{self.count / elapsed:,.0f} {self.unit}/s")


@contextmanager
def plain(label: str, total: int | None, unit: str = "rows") -> Iterator[Callable[[int], None]]:
    """For work that shows a live bar on a terminal: the same progress as plain lines on
    stderr elsewhere (the command's own summary ends it); yields a callback taking the
    count done so far."""
    yield Meter(label, total, to_stderr, unit).update
