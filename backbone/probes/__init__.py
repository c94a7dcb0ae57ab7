"""Connectivity probes, one module per service; `plan_probes` picks them for a contract."""
from __future__ import annotations

from ..checks import Check
from ..contract import Contract


def plan_probes(contract: Contract, timeout_s: float) -> dict[str, Check]:
    if contract.tier == "bootstrap":
        from .bootstrap import bootstrap_checks
        return bootstrap_checks(contract, timeout_s)
    from .kafka import probe_kafka
    from .redis import probe_redis
    from .timescale import probe_timescale
    return {
        "timescale": lambda: probe_timescale(contract.timescale, timeout_s),
        "redis": lambda: probe_redis(contract.redis, timeout_s),
        "kafka": lambda: probe_kafka(contract.kafka, timeout_s),
    }
