"""What a database is at: revision, pending migrations and drift. Plain data, no driver."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Timescale:
    installed: str | None  # extension version in this database
    available: bool  # the server has the extension's files
    preloaded: bool = True  # in shared_preload_libraries: without it, CREATE EXTENSION fails

    @property
    def creatable(self) -> bool:
        return self.available and self.preloaded


@dataclass
class State:
    dialect: str
    current: str | None
    head: str
    pending: list[str]
    schema_diffs: list[str] = field(default_factory=list)
    policy_diffs: list[str] = field(default_factory=list)
    timescale: Timescale | None = None

    @property
    def drift(self) -> list[str]:
        pending = [f"pending migration {rev}" for rev in self.pending]
        return pending + self.schema_diffs + self.policy_diffs
