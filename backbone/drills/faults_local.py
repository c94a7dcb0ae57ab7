"""Fault injection on the local platform: signals to the processes `backbone local` started
(found by pid and start time, never by name), and target resolution: which member is the
Kafka partition leader or controller, the Redis master, the Patroni leader."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from ..local.environment import LocalEnvironment, topology
from ..local.processes import is_ours
from ..clients.kafka import kafka_client_config
from .faults import FaultError


class LocalFaults:
    platform = "local"

    def __init__(self, state_dir: Path, progress=lambda message: None):
        self.env = LocalEnvironment(state_dir, progress=progress)

    def _state(self) -> dict[str, Any]:
        return self.env._require()

    def _svc(self, member: str) -> dict[str, Any]:
        services = self._state()["services"]
        if member not in services:
            raise FaultError(f"no member {member!r} in the local environment ({', '.join(services)})")
        return services[member]

    def _pids(self, member: str) -> list[int]:
        state, svc = self._state(), self._svc(member)
        if not is_ours(svc.get("pid"), svc.get("start_ticks")):
            raise FaultError(f"{member} is not running")
        family = topology(state).get("timescale")
        if svc["kind"] == "patroni" and hasattr(family, "member_pids"):
            return family.member_pids(state, member)  # Patroni and its postmaster: the whole node
        return [svc["pid"]]

    def preflight(self, fault: str) -> None:
        """Refuse a fault this platform cannot inject, before any write or signal."""
        if fault == "partition":
            raise FaultError("partition is not available on the local platform: every member shares the "
                             "loopback interface (it needs network namespaces or a proxy in front of each member)")

    def inject(self, member: str, fault: str) -> None:
        if fault == "kill":
            for pid in self._pids(member):
                os.kill(pid, signal.SIGKILL)
        elif fault == "pause":
            for pid in self._pids(member):
                os.kill(pid, signal.SIGSTOP)
        elif fault == "stop":
            self.env.stop(member)
        else:
            self.preflight(fault)
            raise FaultError(f"unknown fault {fault!r}")

    def heal(self, member: str, fault: str) -> None:
        if fault == "pause":
            for pid in self._pids(member):
                os.kill(pid, signal.SIGCONT)
            return
        self._reap_leftovers(member)
        self.env.start(member)

    def _reap_leftovers(self, member: str) -> None:
        # a SIGKILLed member is gone, but the state still names its pid: clear it so
        # `start` launches a fresh process
        state = self._state()
        svc = state["services"][member]
        if not is_ours(svc.get("pid"), svc.get("start_ticks")):
            svc["pid"] = None
            self.env._save(state)

    # --- which member is the target --------------------------------------------------
    def resolve(self, service: str, target: str, contract, workload) -> str:
        state = self._state()
        if service == "kafka":
            names = {s.get("node_id"): n for n, s in state["services"].items() if s["kind"] == "kafka"}
            if target in ("leader", "primary"):
                broker = workload.leader()
            elif target == "controller":
                admin = AdminClient(kafka_client_config(contract.kafka, 5))
                broker = admin.describe_cluster(request_timeout=5).result(timeout=10).controller.id
            else:
                leader = workload.leader()
                broker = next((b for b in sorted(names) if b != leader), None)
            if broker not in names:
                raise FaultError(f"broker {broker} is not a member of the local environment")
            return names[broker]
        family = topology(state)[service]
        if not hasattr(family, "primary"):
            if target == "replica":
                raise FaultError(f"{service} runs as a single node here; start the HA topology with "
                                 "`backbone local up --ha` to drill a replica")
            return next(n for n, s in state["services"].items() if s["kind"] == service)
        return family.primary(state) if target in ("primary", "leader") else family.replicas(state)[0]
