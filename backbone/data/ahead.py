"""Read ahead: the next batch of a file is read and validated on a thread of its own while
the current one is written (and prepared for the store: its COPY bytes, its values), so the reader's work (pyarrow and numpy, which release the GIL)
overlaps the store's (the database server, or SQLite, working on the batch before).

At most `depth` batches wait ready, plus the one being made: memory stays bounded whatever
the file's size. An exception in the reader reaches the consumer at the point it would have
in a plain loop (after the batches before it); closing the consumer early (an error while
writing, a refused file, Ctrl-C) stops the reader at its next batch and waits for it.
"""
from __future__ import annotations

import queue
import sys
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()
SWITCH_S = 0.0005  # the GIL's switch interval while a reader runs ahead


def ahead(items: Iterable[T], depth: int = 1, poll_s: float = 0.1,
          prepare: Callable[[T], T] | None = None) -> Iterator[T]:
    """`items`, read `depth` ahead on a thread, each passed through `prepare` there first."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=poll_s)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        source = iter(items)
        try:
            for item in source:
                if not hand((item if prepare is None else prepare(item), None)):
                    return
            hand((_END, None))
        except BaseException as exc:  # handed over and raised in the consumer
            hand((_END, exc))
        finally:
            getattr(source, "close", lambda: None)()  # its open file, now, on this thread

    reader = threading.Thread(target=read, name="backbone-read-ahead", daemon=True)
    # The writing thread gives up the GIL at every wait on its socket (many per batch: COPY
    # data goes out in chunks) and must win it back from a busy reader; at the default 5 ms
    # switch interval that cost about 8% of a file's load, at 0.5 ms nothing measurable.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_S))
    reader.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(interval)
