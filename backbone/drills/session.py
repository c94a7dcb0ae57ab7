"""One live drill from start to report, as `drill run --service` and `drill run --plan` run
it: preflight and target resolution on the platform's fault backend, the contract's Redis
write bound enforced for a Redis partition, the drill, and its notes."""
from __future__ import annotations

from typing import Callable

from ..contract import Contract
from ..errors import ConfigError
from .faults import FaultBackend, FaultError
from .live import DrillResult, isolated_acks, run_drill


def live_drill(contract: Contract, backend: FaultBackend, service: str, fault: str, target: str, *, warmup_s: float = 2.0,
               max_outage_s: float = 60.0, progress: Callable[[str], None] = lambda m: None) -> DrillResult:
    """Raises ConfigError when the drill cannot start (nothing was touched), FaultError when
    it failed part-way."""
    from .workloads import WORKLOADS
    try:
        backend.preflight(fault)
        workload = WORKLOADS[service](contract)
        member = backend.resolve(service, target, contract, workload)
    except FaultError as exc:
        raise ConfigError(str(exc)) from None

    def inject() -> str:
        backend.inject(member, fault)
        return member

    objectives = getattr(contract.objectives, service).model_dump()
    previous = backend.redis_bound(contract.redis.min_replicas_to_write, contract.redis.min_replicas_max_lag_s) \
        if service == "redis" and fault == "partition" else None
    bounded = previous is not None
    try:
        result = run_drill(workload, inject, lambda m: backend.heal(m, fault), service=service, fault=fault,
                           target=target, platform=contract.platform, objectives=objectives, warmup_s=warmup_s,
                           max_outage_s=max_outage_s, progress=progress,
                           failed_over=backend.failover_probe(service, workload) if fault == "partition" else None)
    finally:
        if previous is not None:
            backend.redis_bound(*previous)
    proof = backend.partition_proof if fault == "partition" else None
    if proof is not None:
        m = result.measurement
        result.partition = proof | {"isolated_acks": isolated_acks(
            result.attempts, result.fault_at_s, m.lost_seqs, set(proof["cut_ports"]) | set(proof["assigned_ports"]))}
    if bounded:
        r = contract.redis
        result.notes.append(
            f"min-replicas-to-write {r.min_replicas_to_write}, min-replicas-max-lag {r.min_replicas_max_lag_s} s "
            "(from the contract): " + ("an isolated master stops acknowledging writes once its replicas have been "
                                       f"silent for {r.min_replicas_max_lag_s} s" if r.min_replicas_to_write else
                                       "no bound: an isolated master acknowledges writes until the partition heals"))
    if service == "redis" and result.measurement.acked_lost:
        result.notes.append("Redis replicates asynchronously: writes acknowledged by the old master and not yet "
                            "replicated are lost on failover; this drill counts them.")
    return result
