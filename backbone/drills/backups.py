"""The backup / restore drills, one per service, in one registry.

Every drill has one signature, `run(contract, options) -> BackupResult`: back up (or take the
backup `options.given`), restore into a scratch copy, compare, and time the restore against
the RTO and the backup's age against the RPO. A drill that cannot run raises
`BackupDrillError` (exit 1). Adding a service's drill is one module with a `run` and one line
in `BACKUP_DRILLS`; `drill backup --service` and the quarter's rotation read it from here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from ..contract import Contract

# service -> "module:function"; a drill's module (and its driver) is imported only when it runs
BACKUP_DRILLS = {
    "timescale": "backbone.drills.backup:run",          # pg_dump -> scratch database
    "redis": "backbone.drills.backup_redis:run",        # BGSAVE snapshot -> scratch redis-server
    "kafka": "backbone.drills.backup_kafka:run",        # configs, offsets, records -> scratch cluster
}


@dataclass(frozen=True)
class BackupOptions:
    work_dir: Path                      # where a fresh backup and the scratch copy go
    given: Path | None = None           # restore this existing backup (a file or an export directory)
    topics: tuple[str, ...] | None = None  # kafka: only these declared topics
    timeout_s: float = 600.0
    progress: Callable[[str], None] | None = None
    state_dir: Path | None = None       # the local environment (platform local): its operator's account


class BackupResult(Protocol):
    """What every backup drill returns: judged by `passed`, which owns the exit code."""

    objectives: dict[str, float]

    @property
    def passed(self) -> bool: ...

    @property
    def exit_code(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def to_markdown(self) -> str: ...


def backup_drill(service: str) -> Callable[[Contract, BackupOptions], BackupResult]:
    from ..errors import ConfigError
    if service not in BACKUP_DRILLS:
        raise ConfigError(f"no backup drill for {service!r} (one of {', '.join(BACKUP_DRILLS)})")
    module, name = BACKUP_DRILLS[service].split(":")
    return getattr(importlib.import_module(module), name)


def run_backup(service: str, contract: Contract, options: BackupOptions) -> BackupResult:
    return backup_drill(service)(contract, options)
