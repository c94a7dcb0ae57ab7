"""Find the service binaries the setup script installs; say how to get a missing one."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..serviceconfig import KAFKA_VERSION

SETUP_HINT = ("run `make setup` (PostgreSQL, Redis, redis-sentinel, Patroni and etcd from Debian packages, "
              "the Kafka jars with Maven)")


def default_kafka_libs() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "backbone" / f"kafka-{KAFKA_VERSION}" / "libs"


@dataclass(frozen=True)
class Binaries:
    pg_bin: Path | None
    redis_server: Path | None
    java: Path | None
    kafka_libs: Path | None
    # the HA topologies (`local up --ha`) only
    patroni: Path | None = None
    etcd: Path | None = None
    redis_sentinel: Path | None = None

    def missing(self, services: list[str]) -> list[str]:
        need = {
            "timescale": [("PostgreSQL server (initdb, postgres)", self.pg_bin)],
            "redis": [("redis-server", self.redis_server)],
            "kafka": [("java (17+)", self.java), (f"Kafka {KAFKA_VERSION} jars", self.kafka_libs)],
            "patroni": [("patroni", self.patroni)],
            "etcd": [("etcd (etcd-server)", self.etcd)],
            "sentinel": [("redis-sentinel", self.redis_sentinel)],
        }
        return [what for s in services for what, found in need[s] if found is None]


def find_binaries() -> Binaries:
    return Binaries(pg_bin=_pg_bin(), redis_server=_which("redis-server"), java=_which("java"),
                    kafka_libs=_kafka_libs(), patroni=_which("patroni"), etcd=_which("etcd"),
                    redis_sentinel=_which("redis-sentinel"))


def _which(name: str) -> Path | None:
    # /usr/bin too: Debian's packages live there even when PATH is trimmed (sudo, CI runners)
    found = shutil.which(name) or shutil.which(name, path="/usr/bin")
    return Path(found) if found else None


def _pg_bin() -> Path | None:
    configured = os.environ.get("BACKBONE_PG_BIN")
    candidates = [Path(configured)] if configured else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True)
    for path in candidates:
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    return None


def _kafka_libs() -> Path | None:
    path = Path(os.environ.get("BACKBONE_KAFKA_LIBS") or default_kafka_libs())
    return path if any(path.glob("kafka_2.13-*.jar")) else None
