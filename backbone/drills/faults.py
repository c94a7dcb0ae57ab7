"""The fault-injection interface every platform backend implements."""
from __future__ import annotations

from typing import Protocol

FAULTS = ("kill", "stop", "pause", "partition")


class FaultError(Exception):
    """A fault could not be injected or healed; the message names the member and why."""


class FaultBackend(Protocol):
    platform: str  # "local" | "docker" | "kubernetes"

    def inject(self, member: str, fault: str) -> None: ...

    def heal(self, member: str, fault: str) -> None: ...
