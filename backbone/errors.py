"""The one error root. Every error meant for the operator derives from `BackboneError`
(a failed operation, exit 1) or `ConfigError` (bad input, exit 2); `cli.main` prints it once,
redacted, and exits with its code. Anything else is a bug and keeps its traceback."""
from __future__ import annotations


class BackboneError(Exception):
    """An error whose message is meant for the operator and carries no secret."""

    exit_code = 1  # a check or an operation failed
    context = ""  # what failed, printed before the message ("drill failed"); empty: the message says it


class ConfigError(BackboneError, ValueError):
    """Bad input or configuration; the message names the field or option (exit 2)."""

    exit_code = 2


class StoppedOnRequest(BackboneError):
    """A shutdown asked a run in flight to stop (`serve`): it rolled back and is journaled
    `interrupted`, like a run stopped by a signal, never `failed`."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the process to stop. A KeyboardInterrupt, so code that catches
    Exception lets it through and transactions roll back as on Ctrl-C; exit 128 + the signal."""

    def __init__(self, signum: int, name: str):
        super().__init__(f"interrupted by {name}")
        self.signum, self.name = signum, name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
