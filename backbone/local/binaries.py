"""Find the service binaries the setup script installs; say how to get a missing one."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..serviceconfig import (KAFKA_VERSION, KUBERNETES_VERSION, PATRONI_HOME, PATRONI_VERSION, POSTGRES_MAJOR,
                             TIMESCALEDB_VERSION, deploy_tool)

SETUP_HINT = ("run `make setup` (PostgreSQL, Redis, redis-sentinel and etcd from Debian packages, "
              f"Patroni {PATRONI_VERSION} with pip, TimescaleDB {TIMESCALEDB_VERSION} built from source, "
              "the Kafka jars with Maven)")


def default_kafka_libs() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "backbone" / f"kafka-{KAFKA_VERSION}" / "libs"


@dataclass(frozen=True)
class Binaries:
    pg_bin: Path | None
    timescaledb: Path | None  # the extension's control script for TIMESCALEDB_VERSION, beside pg_bin's server
    redis_server: Path | None
    java: Path | None
    kafka_libs: Path | None
    # the HA topologies (`local up --ha`) only
    patroni: Path | None = None
    etcd: Path | None = None
    redis_sentinel: Path | None = None

    def missing(self, services: list[str]) -> list[str]:
        need = {
            "timescale": [(f"PostgreSQL {POSTGRES_MAJOR} server (initdb, postgres)", self.pg_bin),
                          (f"TimescaleDB {TIMESCALEDB_VERSION} for PostgreSQL {POSTGRES_MAJOR}", self.timescaledb)],
            "redis": [("redis-server", self.redis_server)],
            "kafka": [("java (17+)", self.java), (f"Kafka {KAFKA_VERSION} jars", self.kafka_libs)],
            "patroni": [(f"patroni {PATRONI_VERSION}", self.patroni)],
            "etcd": [("etcd (etcd-server)", self.etcd)],
            "sentinel": [("redis-sentinel", self.redis_sentinel)],
        }
        return [what for s in services for what, found in need[s] if found is None]


def find_binaries() -> Binaries:
    pg_bin = _pg_bin()
    return Binaries(pg_bin=pg_bin, timescaledb=_timescaledb(pg_bin), redis_server=_which("redis-server"), java=_which("java"),
                    kafka_libs=_kafka_libs(), patroni=_patroni(), etcd=_which("etcd"),
                    redis_sentinel=_which("redis-sentinel"))


def _which(name: str) -> Path | None:
    # /usr/bin too: Debian's packages live there even when PATH is trimmed (sudo, CI runners)
    found = shutil.which(name) or shutil.which(name, path="/usr/bin")
    return Path(found) if found else None


def _patroni() -> Path | None:
    """$BACKBONE_PATRONI, else the pinned Patroni the setup installs. Not the one on PATH:
    Debian's 3.0.2 loses acknowledged writes when a paused primary resumes."""
    configured = os.environ.get("BACKBONE_PATRONI")
    path = Path(configured) if configured else Path(PATRONI_HOME) / "bin" / "patroni"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _pg_bin() -> Path | None:
    """PostgreSQL's bin directory: $BACKBONE_PG_BIN, else Debian's for the pinned major."""
    configured = os.environ.get("BACKBONE_PG_BIN")
    for path in [Path(configured)] if configured else [Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")]:
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    return None


def _timescaledb(pg_bin: Path | None) -> Path | None:
    """The install script of the pinned TimescaleDB in the server's extension directory
    (Debian: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15/extension)."""
    if pg_bin is None:
        return None
    major = pg_bin.parent.name
    for share in (pg_bin.parent.parent.parent.parent / "share" / "postgresql" / major, pg_bin.parent / "share"):
        script = share / "extension" / f"timescaledb--{TIMESCALEDB_VERSION}.sql"
        if script.is_file():
            return script
    return None


def _kafka_libs() -> Path | None:
    path = Path(os.environ.get("BACKBONE_KAFKA_LIBS") or default_kafka_libs())
    return path if any(path.glob("kafka_2.13-*.jar")) else None


@dataclass(frozen=True)
class KubeBinaries:
    """The local API-only Kubernetes cluster's (local/kubernetes.py)."""
    etcd: Path | None
    apiserver: Path | None
    controller_manager: Path | None
    hint: str = (f"run `make setup` (etcd from Debian's etcd-server; kube-apiserver and kube-controller-manager "
                 f"{KUBERNETES_VERSION} built from the Go module proxy by scripts/tools/build.sh)")

    def missing(self) -> list[str]:
        found = {"etcd (etcd-server)": self.etcd, f"kube-apiserver {KUBERNETES_VERSION}": self.apiserver,
                 f"kube-controller-manager {KUBERNETES_VERSION}": self.controller_manager}
        return [what for what, path in found.items() if path is None]


def find_kube_binaries() -> KubeBinaries:
    return KubeBinaries(etcd=_which("etcd"), apiserver=_executable(deploy_tool("kube-apiserver")),
                        controller_manager=_executable(deploy_tool("kube-controller-manager")))


def _executable(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.X_OK) else None
