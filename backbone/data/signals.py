"""Signals held back while an ingest commits and journals its run, so a run that committed is
never journaled `interrupted` (backbone.data.api)."""
from __future__ import annotations

import signal
import threading


class SignalsHeld:
    """SIGINT and SIGTERM blocked for this thread while held; on release, one that arrived in
    between is delivered (and raised by its handler) at once. Only the main thread, where
    Python runs signal handlers, needs it; elsewhere it does nothing."""

    SIGNALS = {signal.SIGINT, signal.SIGTERM}

    def __init__(self) -> None:
        self.previous: set | None = None

    def hold(self) -> None:
        if (self.previous is None and hasattr(signal, "pthread_sigmask")
                and threading.current_thread() is threading.main_thread()):
            self.previous = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)

    def release(self) -> None:
        if self.previous is not None:
            previous, self.previous = self.previous, None
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
