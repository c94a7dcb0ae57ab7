"""The fault-injection interface every platform backend implements, and the one table that
picks a backend by the contract's platform.

A backend implements the whole `FaultBackend` protocol. What a platform cannot do to a
member (pause a kubernetes pod) its `inject` refuses with a `FaultError` naming it; what a
platform cannot observe (who took over from a partitioned member) or does not change (the
Redis write bound) its method answers with None, and the drill says so in its notes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..errors import BackboneError, ConfigError

if TYPE_CHECKING:
    from ..contract import Contract

SERVICES = ("timescale", "redis", "kafka")  # what a drill runs against (a live drill, a backup drill)
FAULTS = ("kill", "stop", "pause", "partition")
TARGETS = ("primary", "leader", "controller", "replica")

# platform -> "module:class"; a backend's module (and its client library) is imported only when used
BACKENDS = {
    "local": "backbone.drills.faults_local:LocalFaults",
    "docker": "backbone.drills.faults_docker:DockerFaults",
    "kubernetes": "backbone.drills.faults_kubernetes:KubernetesFaults",
}


class FaultError(BackboneError):
    """A fault could not be injected or healed; the message names the member and why (exit 1)."""

    context = "drill failed"


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend may be built from; each takes what its platform needs."""
    state_dir: Path = Path(".backbone/local")   # local: the environment `backbone local up` made
    namespace: str = "backbone"                 # kubernetes
    network: str | None = "backbone"            # docker: the stack's network (partition faults)
    progress: Callable[[str], None] = lambda message: None


class FaultBackend(Protocol):
    platform: str  # "local" | "docker" | "kubernetes"
    partition_proof: dict[str, Any] | None  # after a partition: the cut and its probes, when proven

    @classmethod
    def create(cls, options: BackendOptions) -> FaultBackend: ...

    def preflight(self, fault: str) -> None:
        """Refuse (FaultError) a fault this platform cannot inject, before anything is touched."""

    def resolve(self, service: str, target: str, contract: Contract, workload: Any) -> str:
        """The member `target` ("primary", "leader", "controller", "replica") names now."""

    def inject(self, member: str, fault: str) -> None: ...

    def heal(self, member: str, fault: str) -> None: ...

    def redis_bound(self, min_replicas: int, max_lag_s: int) -> tuple[int, int] | None:
        """Enforce the contract's Redis write bound for a partition; the previous values to
        restore, or None when the platform's deployment sets it and nothing was changed."""

    def failover_probe(self, service: str, workload: Any) -> Callable[[str], bool] | None:
        """`probe(member)`: whether another member took over from the partitioned one; None
        when the platform cannot tell (the partition then counts as in effect at once)."""


class ApiFaults:
    """What a platform that injects faults through its own API (docker, kubernetes) shares:
    members are named as the platform names them, the deployment carries the Redis bound,
    and neither the cut nor the members' election is observed from here."""

    partition_proof = None

    def preflight(self, fault: str) -> None:
        pass  # inject itself refuses a fault this platform cannot make, before any request

    def resolve(self, service: str, target: str, contract: Contract, workload: Any) -> str:
        return target

    def redis_bound(self, min_replicas: int, max_lag_s: int) -> None:
        return None  # the stack's redis.conf carries the contract's bound; nothing to change

    def failover_probe(self, service: str, workload: Any) -> None:
        return None


def backend_for(contract: Contract, options: BackendOptions) -> FaultBackend:
    """The contract's platform's backend, from `BACKENDS`."""
    if contract.platform not in BACKENDS:
        raise ConfigError(f"platform {contract.platform!r} has no services to drill; use --simulate")
    module, name = BACKENDS[contract.platform].split(":")
    return getattr(importlib.import_module(module), name).create(options)
