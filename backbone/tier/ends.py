"""The two ends of a tier move, from the institutional contract: the bootstrap store it names
(the source), the institutional services (the target), and what clients that follow a switch
load the contract from (the record's reference). Also the switch's preflight rule."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..contract import Contract
from ..errors import ConfigError


def ends(contract: Contract, outputs: Path | None, stack: str | None) -> tuple[Contract, Contract, dict]:
    """(source contract, target contract, what clients load the target from); ConfigError
    (exit 2) when the contract cannot name both ends."""
    if contract.tier != "institutional" or contract.missing("timescale"):
        raise ConfigError("tier commands take the institutional contract (with its timescale section): "
                          "set backbone:tier to institutional, `pulumi up`, and pass its outputs")
    if contract.bootstrap is None:
        raise ConfigError("the institutional contract names no bootstrap store (bootstrap.store): export "
                          "backbone:bootstrap_store from the stack (docs/tiers.md)")
    if not Path(contract.bootstrap.store).exists():
        raise ConfigError(f"the bootstrap store {contract.bootstrap.store} does not exist")
    ref = {"outputs": str(Path(outputs).resolve())} if outputs else {"stack": stack} if stack else None
    if ref is None:
        raise ConfigError("name the institutional contract with --outputs FILE or --stack NAME: clients that "
                          "follow the switch load it from there")
    return source_of(contract), contract, ref


def source_of(target: Contract) -> Contract:
    """The bootstrap end of an institutional contract: its store and its data settings."""
    return Contract(tier="bootstrap", bootstrap=target.bootstrap, data=target.data)


def preflight(target: Contract, probes: dict[str, Callable]) -> list[dict]:
    """The target's service probes and topics must be ok; migrations behind head are fine
    (the switch's first phase migrates the target) and are reported as such. `probes`: the
    service probes by name, as `backbone probe` plans them."""
    from ..checks.runner import run_concurrently
    from ..migrate.check import migrations_check
    from ..topics.check import topics_check
    checks = dict(probes)
    checks["migrations"] = lambda: migrations_check(target, 5.0)
    if target.kafka is not None:
        checks["topics"] = lambda: topics_check(target, 5.0)
    found = []
    for r in run_concurrently(checks, 20.0):
        status, summary = r.status, r.message
        if r.name == "migrations" and r.status != "ok" and r.code not in ("unreachable", "timeout", "auth_failed"):
            status, summary = "ok", f"{r.message} (the switch migrates the target first)"
        found.append({"check": r.name, "status": status, "summary": summary})
    return found
