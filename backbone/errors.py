"""The one error root. The CLI turns a `BackboneError` into its message and exit code;
anything else is a bug and keeps its traceback."""
from __future__ import annotations


class BackboneError(Exception):
    """An error whose message is meant for the operator and carries no secret."""

    exit_code = 1  # a check or an operation failed


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
