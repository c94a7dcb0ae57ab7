"""How library clients follow the active-tier record (backbone.data.active_tier).

A client opened from either end's contract (both name the bootstrap store) uses the tier
the record names. Every write transaction passes a fence first:
- bootstrap store: the transaction already holds SQLite's write lock (BEGIN IMMEDIATE),
  which a cut-over holds while it flips the record; the record is read under it.
- TimescaleDB: a shared advisory lock (`FENCE_KEY`), which a cut-over back to bootstrap
  holds exclusively while it flips the record; the record is read under it.
Either way a write that finds another tier active raises `TierMoved` before it has written
anything, and the data API re-opens on the active tier and runs it there.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from ..contract import Contract
from ..errors import ConfigError
from .active_tier import ActiveTier, RecordReader, TierMoved, TierUnreachable

FENCE_KEY = 0x7469657266656E63  # "tierfenc": the institutional side's write fence


def contract_for(contract: Contract, active: ActiveTier | None) -> Contract:
    """The contract of the active tier, for a client opened with `contract`."""
    if active is None:
        return contract.model_copy(update={"tier": "bootstrap"}) if before_first_cutover(contract) else contract
    if active.tier == contract.tier:
        return contract
    if active.tier == "bootstrap":
        return contract.model_copy(update={"tier": "bootstrap"})
    from ..contract import Sources, load_contract
    where = active.target.get("outputs") or f"stack {active.target.get('stack')}"
    try:
        # the recorded source alone: this client's environment describes the tier it left
        target = load_contract(Sources(outputs=Path(active.target["outputs"]), environ={})
                               if "outputs" in active.target else Sources(stack=active.target["stack"], environ={}))
    except (ConfigError, KeyError) as exc:
        raise TierUnreachable(f"the deployment switched to the institutional tier (cut-over {active.epoch}), "
                              f"but this client cannot load its contract from {where}: {exc}") from None
    if target.tier != "institutional" or target.missing("timescale"):
        raise TierUnreachable(f"the deployment switched to the institutional tier, but the contract from {where} "
                              "is not an institutional one with a timescale section")
    return target.model_copy(update={"bootstrap": contract.bootstrap})


def before_first_cutover(contract: Contract) -> bool:
    """An institutional contract naming a bootstrap store that exists, with no active-tier
    record yet: the deployment still lives in that store (what `tier plan` and `tier status`
    say), so its clients read and write there until the first cut-over. Writing to
    TimescaleDB now would acknowledge writes the active tier never sees, and the switch
    would later refuse them as extra rows. A store that does not exist holds nothing: an
    institutional deployment from day one (the stacks always name the store) stays on its
    services."""
    return contract.tier == "institutional" and contract.bootstrap is not None \
        and Path(contract.bootstrap.store).is_file()


def bootstrap_fence(conn: sqlite3.Connection) -> None:
    found = dict(conn.execute("SELECT name, value FROM tier_state WHERE name IN ('active', 'switch')").fetchall()) \
        if has_record_table(conn) else {}
    active = ActiveTier(**json.loads(found["active"])) if "active" in found else None
    if active is not None and active.tier != "bootstrap":
        raise TierMoved(active)
    if "switch" in found and not _prepared.is_set() and json.loads(found["switch"]).get("phase") in NEAR_CUTOVER:
        _prepared.set()  # load the institutional drivers now, so following the cut-over costs a connect only
        threading.Thread(target=_import_drivers, name="backbone-tier-prepare", daemon=True).start()


NEAR_CUTOVER = ("catchup", "verify", "cutover")
_prepared = threading.Event()


def _import_drivers() -> None:
    from ..clients import redis  # noqa: F401
    from . import store_timescale  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401


def has_record_table(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM tier_state LIMIT 0")
        return True
    except sqlite3.OperationalError:  # a store not migrated to 0004: never switched
        return False


def institutional_fence(record: RecordReader):
    def fence(pg) -> None:
        if record.read() is None:
            return  # never switched: nothing to fence
        pg.execute("SELECT pg_advisory_xact_lock_shared(%s)", (FENCE_KEY,))
        active = record.read()
        if active is not None and active.tier != "institutional":
            raise TierMoved(active)
    return fence
