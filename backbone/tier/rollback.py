"""`backbone tier rollback` and `backbone tier complete`.

Rollback is the cut-over in the other direction: mirror what the reverse stream still
holds into the bootstrap store, then fence the institutional tier's writes (an exclusive
advisory lock that every client write waits on, `follow.FENCE_KEY`), apply and verify the
final delta, flip the record to bootstrap, release. Bounded by the same cut-over timeout:
when it cannot finish in time the fence is released and the institutional tier stays
active. With the institutional tier unreachable it refuses unless forced, and a forced
rollback says exactly how far the reverse stream had got: what is not on the bootstrap side.

Complete ends the switch: the reverse stream's triggers and change log go; the bootstrap
store stays where it is, never deleted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..contract import Contract
from ..errors import ConfigError
from . import copy as mover
from . import reverse, tracking
from ..data.follow import FENCE_KEY
from ..data.active_tier import get_state, now_text, read_active, set_state, write_active
from .switch import Options, SwitchError, fault, open_store


@dataclass
class RollbackOutcome:
    mirrored: int = 0
    fence_ms: list[float] = field(default_factory=list)
    fence_spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end), wall clock
    forced: bool = False
    not_on_bootstrap: dict | None = None    # forced: where the reverse stream had got to
    verification: dict | None = None
    epoch: int = 0


def _active_institutional(lite) -> None:
    if (get_state(lite, "switch") or {}).get("phase") == "completed":
        raise ConfigError("the switch was completed: the reverse stream is stopped, so a rollback would lose the "
                          "writes made since; move back with a new switch in the other direction instead")
    active = read_active(lite)
    if active is None or active.tier != "institutional":
        raise ConfigError("nothing to roll back: the bootstrap tier is active"
                          + ("" if active else " and this deployment was never switched"))


def rollback(source: Contract, target: Contract, options: Options, force: bool = False,
             say=lambda _: None) -> RollbackOutcome:
    lite = open_store(source)
    outcome = RollbackOutcome(forced=force)
    try:
        _active_institutional(lite)
        try:
            pg = mover.open_target(target.timescale, 5.0, duty="owner")
        except Exception as exc:
            if not force:
                raise SwitchError(f"the institutional tier is unreachable ({type(exc).__name__}); rollback refused: "
                                  "writes made there may not be on the bootstrap side yet. `--force` rolls back anyway "
                                  "and reports what is missing") from None
            return _forced(lite, outcome, say)
        with pg:
            outcome.mirrored += reverse.sync(lite, pg)[0]
            say(f"reverse stream: {outcome.mirrored:,} change(s) mirrored into the bootstrap store")
            outcome.verification = _verify(lite, pg, say, source.bootstrap.store)
            outcome.mirrored += reverse.sync(lite, pg)[0]  # written while verification read: outside the fence
            for attempt in range(1, options.cutover_retries + 1):
                ok, why = _try(lite, pg, options.cutover_timeout_s, outcome)
                if ok:
                    say(f"cut-over: institutional writes fenced for {outcome.fence_ms[-1]:.0f} ms; "
                        "the bootstrap tier is active")
                    return outcome
                say(f"cut-over attempt {attempt}: {why}; the fence is released and the institutional tier stays active")
                outcome.mirrored += reverse.sync(lite, pg)[0]
            raise SwitchError(f"the rollback's cut-over did not finish within {options.cutover_timeout_s:g} s in "
                              f"{options.cutover_retries} attempt(s) ({why}); the institutional tier stays active")
    finally:
        lite.close()


def _verify(lite, pg, say, store: str) -> dict:
    """Both tiers hold the same rows, but for what the institutional tier took while this
    read (those are mirrored and checked again inside the fence)."""
    import json

    from .switch import _norm, listing_for, unexplained
    from .verify import verify
    listing = listing_for(store)
    result = verify(lite, pg, listing=listing)
    after = reverse.checkpoint(lite)["seq"]
    meanwhile = {(tbl, _norm(tbl, json.loads(key))) for tbl, key in
                 pg.execute("SELECT tbl, key FROM tier_changes WHERE seq > %s", (after,))}
    pg.rollback()
    count, real = unexplained(listing, meanwhile)
    broken = [f"{t.table}: {t.error}" for t in result.tables if t.error]
    summary = {k: v for k, v in result.to_dict().items() if k != "tables"}
    summary.update(equal=not count and not broken, written_meanwhile=len(meanwhile), mismatches=count,
                   listing=str(listing))
    say(f"verify: {'equal' if summary['equal'] else 'NOT equal'} ({summary['rows_per_s']:,} rows/s)")
    if broken or count:
        shown = "; ".join(broken + [f"{t} {m.kind} {m.key}" for t, m in real])
        raise SwitchError(f"verification found {count:,} mismatched row(s) between the tiers: {shown}; "
                          f"every one is listed in {listing}; nothing was rolled back")
    return summary


def _try(lite, pg, budget: float, outcome: RollbackOutcome) -> tuple[bool, str]:
    from .delta import verify_keys
    pg.execute(f"SET lock_timeout = {int(budget * 1000)}")
    try:
        pg.execute("SELECT pg_advisory_lock(%s)", (FENCE_KEY,))  # the fence: client writes wait from here
    except Exception:
        pg.rollback()
        return False, "in-flight institutional writes did not finish in time"
    pg.commit()
    fenced, deadline = time.monotonic(), time.monotonic() + budget
    try:
        lite.execute("BEGIN IMMEDIATE")
        try:
            _, touched = reverse.sync(lite, pg, deadline=deadline, in_transaction=True)
            if reverse.lag(lite, pg):
                raise TimeoutError("changes still to mirror when the time ran out")
            different = verify_keys(lite, pg, touched)
            if different:
                raise SwitchError(f"the final delta does not verify: {len(different)} row(s) differ, first "
                                  f"{different[:3]}; nothing was rolled back")
            active = write_active(lite, "bootstrap", read_active(lite).target, read_active(lite))
            state = get_state(lite, "switch") or {}
            set_state(lite, "switch", {**state, "phase": "rolled back", "updated_at": now_text()})
            tracking.install_sqlite(lite)  # bootstrap writes from here on: the next switch catches them up
            if time.monotonic() > deadline:
                raise TimeoutError("the flip came after the deadline")
            fault("rollback-flip")
            lite.execute("COMMIT")
        except BaseException:
            lite.execute("ROLLBACK")
            raise
        outcome.epoch = active.epoch
        with pg.transaction():
            tracking.remove_pg(pg)  # writes go to the bootstrap store from here: nothing more to mirror
        return True, ""
    except TimeoutError as exc:
        return False, str(exc)
    finally:
        _fenced(outcome, fenced)
        pg.rollback()
        pg.execute("SELECT pg_advisory_unlock(%s)", (FENCE_KEY,))
        pg.execute("SET lock_timeout = 0")
        pg.commit()


def _fenced(outcome: RollbackOutcome, fenced: float) -> None:
    held = time.monotonic() - fenced
    outcome.fence_ms.append(held * 1000)
    outcome.fence_spans.append((time.time() - held, time.time()))


def _forced(lite, outcome: RollbackOutcome, say) -> RollbackOutcome:
    """Flip without the institutional tier: what the reverse stream had not mirrored is
    not on the bootstrap side, and says so."""
    point = reverse.checkpoint(lite)
    last = get_state(lite, "reverse_seen") or {}
    lite.execute("BEGIN IMMEDIATE")
    active = write_active(lite, "bootstrap", read_active(lite).target, read_active(lite))
    state = get_state(lite, "switch") or {}
    set_state(lite, "switch", {**state, "phase": "rolled back (forced)", "updated_at": now_text()})
    lite.execute("COMMIT")
    outcome.epoch = active.epoch
    outcome.not_on_bootstrap = {
        "mirrored_through_change": point["seq"], "mirrored_at": point["at"],
        "pending_at_last_look": max(0, last.get("top", 0) - point["seq"]), "last_look_at": last.get("at"),
        "missing": "every write committed on the institutional tier after change "
                   f"#{point['seq']} ({point['at'] or 'no change mirrored'}): "
                   f"{max(0, last.get('top', 0) - point['seq'])} known at the last look ({last.get('at') or 'never'}), "
                   "and any made since",
    }
    say("forced rollback: the bootstrap tier is active; " + outcome.not_on_bootstrap["missing"])
    return outcome


def complete(source: Contract, target: Contract, say=lambda _: None) -> str:
    lite = open_store(source)
    try:
        active = read_active(lite)
        state = get_state(lite, "switch")
        if active is None or state is None:
            raise ConfigError("no switch to complete: this deployment was never switched")
        if state.get("phase") == "completed":
            return "already completed; nothing to do"
        if active.tier != "institutional":
            raise ConfigError(f"the {active.tier} tier is active: complete ends a switch to institutional")
        with mover.open_target(target.timescale, 5.0, duty="owner") as pg:
            left = reverse.sync(lite, pg)[0]  # the bootstrap copy is as fresh as it can be when kept
            with pg.transaction():
                tracking.remove_pg(pg)
                pg.execute("TRUNCATE tier_changes")
        lite.execute("BEGIN IMMEDIATE")
        set_state(lite, "switch", {**state, "phase": "completed", "updated_at": now_text()})
        lite.execute("COMMIT")
        say(f"reverse stream stopped ({left:,} last change(s) mirrored); the bootstrap store is kept at "
            f"{source.bootstrap.store}")
        return "completed"
    finally:
        lite.close()
