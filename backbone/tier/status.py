"""`backbone tier status`: the active tier, the switch's phase and checkpoints, what is
left to move each way, the last verification. Reads only; the target may be down."""
from __future__ import annotations

from ..contract import Contract
from . import copy as mover
from ..data.follow import has_record_table
from ..data.active_tier import get_state, read_active
from .switch import open_store
from .tables import TABLES


def status(source: Contract, target: Contract) -> dict:
    lite = open_store(source)
    try:
        active = read_active(lite)
        switch = get_state(lite, "switch") or {}
        report: dict = {
            "active_tier": active.tier if active else "bootstrap (never switched)",
            "cutover_epoch": active.epoch if active else 0,
            "active_since": active.since if active else None,
            "phase": switch.get("phase", "none"),
            "switch_id": switch.get("id"),
            "started_at": switch.get("started_at"),
            "last_verification": switch.get("verification"),
            "bootstrap_store": str(source.bootstrap.store),
        }
        tracked = lite.execute("SELECT coalesce(max(seq), 0) FROM tier_changes").fetchone()[0] \
            if has_record_table(lite) else 0
    finally:
        lite.close()
    try:
        with mover.open_target(target.timescale, 5.0) as pg:
            copied = {t: mover.get_pg_state(pg, f"copy:{t}") for t in TABLES}
            caught = (mover.get_pg_state(pg, "catchup") or {"seq": 0})["seq"]
            reverse = (mover.get_pg_state(pg, "reverse") or {"seq": 0})["seq"]
            reverse_top = pg.execute("SELECT coalesce(max(seq), 0) FROM tier_changes").fetchone()[0]
            pg.rollback()
        report.update({
            "target": "reachable",
            "checkpoint": {t: (c["rows"] if c else 0, "done" if c and c["done"] else "open") for t, c in copied.items()},
            "forward_lag_changes": max(0, tracked - caught),
            "reverse_stream_lag_changes": max(0, reverse_top - reverse),
        })
    except Exception as exc:  # an unreachable target is part of the status, not a failure of it
        report.update({"target": f"unreachable: {type(exc).__name__}"})
    return report
