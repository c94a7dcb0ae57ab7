"""`backbone tier switch`: bootstrap -> institutional as resumable phases.

    migrate -> track -> copy -> catchup -> verify -> cutover -> replay -> switched (reverse stream on)

The switch's own record (`tier_state` `switch` in the bootstrap store) names the phase it
reached; the copy and catch-up checkpoints live on the target, written in each chunk's own
transaction. A rerun (after Ctrl-C, kill -9 or a refused cut-over) starts at the recorded
phase and resumes from the checkpoints. The active-tier record (`backbone.data.active_tier`)
flips only inside the cut-over's fence, so exactly one tier is active at any moment.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..contract import Contract
from ..errors import BackboneError, ConfigError
from ..progress import Meter
from . import copy as mover
from . import tracking
from ..data.active_tier import ActiveTier, get_state, now_text, read_active, set_state, write_active
from .tables import TABLES

PHASES = ("migrate", "track", "copy", "catchup", "verify", "cutover", "replay", "switched")
SMALL_DELTA = 2_000  # changes left after a catch-up pass that the fence can apply in time


class SwitchError(BackboneError):
    pass


def fault(point: str) -> None:
    """Fault injection for the crash tests and drills: BACKBONE_TIER_FAULT=kill:<point>
    kills this process (SIGKILL, nothing cleaned up) when the switch reaches <point>."""
    if os.environ.get("BACKBONE_TIER_FAULT") == f"kill:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Options:
    cutover_timeout_s: float = 3.0
    cutover_retries: int = 3
    chunk: int = mover.CHUNK
    stop_after: str | None = None  # a phase name: stop once it is done (tests, step-by-step runs)


@dataclass
class Outcome:
    already: bool = False
    phases: dict[str, float] = field(default_factory=dict)     # phase -> seconds this run
    copied: dict[str, int] = field(default_factory=dict)       # table -> rows copied this run
    caught_up: int = 0
    verification: dict | None = None
    fence_ms: list[float] = field(default_factory=list)        # every cut-over attempt's fence
    fence_spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end), wall clock
    replayed: int = 0
    warmed: int = 0
    active: ActiveTier | None = None


def listing_for(store) -> Path:
    """Where a verification lists every mismatched key: beside the bootstrap store."""
    return Path(f"{store}.mismatches.jsonl")


def unexplained(listing: Path, meanwhile: set[tuple[str, tuple]]) -> tuple[int, list]:
    """How many listed mismatches are not rows written while verification read (those are
    applied and checked again inside the fence), and the first five, streamed from the listing."""
    from .verify import listed
    count, first = 0, []
    for table, m in listed(listing):
        if (table, _norm(table, m.key)) not in meanwhile:
            count += 1
            if len(first) < 5:
                first.append((table, m))
    return count, first


def _norm(table: str, key) -> tuple:
    """A key as both the change log and verification can name it (timestamps as epoch us)."""
    from .canonical import ts_us
    return tuple(ts_us(v) if TABLES[table].kind(k) == "ts" and v is not None else v
                 for k, v in zip(TABLES[table].key, key))


def open_store(contract: Contract, timeout_s: float = 10.0) -> sqlite3.Connection:
    if contract.bootstrap is None:
        raise ConfigError("the contract names no bootstrap store (bootstrap.store): nothing to switch from")
    conn = sqlite3.connect(contract.bootstrap.store, timeout=timeout_s, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


class Switch:
    def __init__(self, source: Contract, target: Contract, target_ref: dict[str, str],
                 options: Options | None = None, say: Callable[[str], None] = lambda _: None):
        if target.tier != "institutional" or target.missing("timescale"):
            raise ConfigError("the target must be an institutional contract with a timescale section")
        self.source, self.target, self.target_ref = source, target, target_ref
        self.options, self.say = options or Options(), say
        self.lite = open_store(source)
        self.outcome = Outcome()

    def close(self) -> None:
        self.lite.close()

    # --- the record of this switch ---------------------------------------------------------

    def state(self) -> dict | None:
        return get_state(self.lite, "switch")

    def _save(self, phase: str, **extra) -> None:
        state = self.state() or {"id": uuid.uuid4().hex, "started_at": now_text(), "target": self.target_ref}
        self.lite.execute("BEGIN IMMEDIATE")
        set_state(self.lite, "switch", {**state, **extra, "phase": phase, "updated_at": now_text()})
        self.lite.execute("COMMIT")

    # --- the run ---------------------------------------------------------------------------

    def _migrate_source(self) -> None:
        """The bootstrap store to head first: the record, the checkpoints and the change log
        live in tables of migration 0004."""
        from ..data.follow import has_record_table
        if has_record_table(self.lite):
            return
        from ..migrate import ops
        self.say("migrate: the bootstrap store to head (the tier tables)")
        ops.apply(ops.engine_for(self.source), self.source)

    def run(self) -> Outcome:
        self._migrate_source()
        active = read_active(self.lite)
        state = self.state()
        if active is not None and active.tier == "institutional":
            self.outcome.already, self.outcome.active = True, active
            if state and state["phase"] == "replay":
                self._finish()
            return self.outcome
        phase = state["phase"] if state and state["phase"] in PHASES[:6] else "migrate"
        steps = {"migrate": self._migrate, "track": self._track, "copy": self._copy, "catchup": self._catchup,
                 "verify": self._verify, "cutover": self._cutover}
        for name in PHASES[PHASES.index(phase):6]:
            self._save(name)
            started = time.monotonic()
            steps[name]()
            fault(name)
            self.outcome.phases[name] = time.monotonic() - started
            if self.options.stop_after == name:
                return self.outcome
        return self._finish()

    def _finish(self) -> Outcome:
        fault("replay")
        started = time.monotonic()
        self._replay()
        self.outcome.phases["replay"] = time.monotonic() - started
        self._save("switched")
        self.outcome.active = read_active(self.lite)
        return self.outcome

    def _target(self):
        return mover.open_target(self.target.timescale, duty="owner")

    def _migrate(self) -> None:
        from ..migrate import ops
        self.say("migrate: the target to head")
        try:
            ops.apply(ops.engine_for(self.target, duty="owner"), self.target)
        except Exception as exc:  # nothing has moved and nothing is flipped
            raise SwitchError(f"migrating the target failed: {type(exc).__name__}: {str(exc)[:300]}") from None

    def _track(self) -> None:
        self.lite.execute("BEGIN IMMEDIATE")
        tracking.install_sqlite(self.lite)
        self.lite.execute("COMMIT")

    def _copy(self) -> None:
        with self._target() as pg:
            for table in TABLES.values():
                before = mover.get_pg_state(pg, f"copy:{table.name}") or {"rows": 0, "done": False}
                pg.commit()
                if before["done"]:
                    self.say(f"copy {table.name}: done before ({before['rows']:,} rows)")
                    continue
                # rows written meanwhile are copied too: the count is an estimate
                total = self.lite.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0] - before["rows"]
                meter = Meter(f"copy {table.name}", max(total, 0), self.say, estimate=True)

                def step(n: int, meter=meter) -> None:
                    meter.add(n)
                    fault("copy-chunk")
                state = mover.copy_table(self.lite, pg, table, step, self.options.chunk)
                meter.done()
                self.outcome.copied[table.name] = meter.count
                if not state["done"]:
                    raise SwitchError(f"copy of {table.name} stopped at rowid {state['rowid']}")

    def _catchup(self, passes: int = 20) -> None:
        with self._target() as pg:
            for _ in range(passes):
                after = (mover.get_pg_state(pg, "catchup") or {"seq": 0})["seq"]
                pg.commit()
                meter = Meter("catch-up", mover.pending_changes(self.lite, after), self.say, unit="changes",
                              estimate=True)
                applied, _keys = mover.catch_up(self.lite, pg, progress=meter.add)
                self.outcome.caught_up += applied
                left = mover.pending_changes(self.lite, (mover.get_pg_state(pg, "catchup") or {"seq": 0})["seq"])
                pg.commit()
                self.say(f"catch-up: {applied:,} change(s) applied, {left:,} left")
                if left <= SMALL_DELTA:
                    return

    def _verify(self) -> None:
        from .verify import verify
        with self._target() as pg:
            meter = Meter("verify", sum(self.lite.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                        for t in TABLES), self.say, estimate=True)
            done: dict[str, int] = {}

            def progress(table: str, rows: int) -> None:  # rows so far in that table
                meter.add(rows - done.get(table, 0))
                done[table] = rows
            listing = listing_for(self.source.bootstrap.store)
            result = verify(self.lite, pg, progress=progress, listing=listing)
            meter.done()
            changed_meanwhile = self._changed_since_catchup(pg)
        count, real = unexplained(listing, changed_meanwhile)
        broken = [f"{t.table}: {t.error}" for t in result.tables if t.error]
        summary = result.to_dict()
        # rows written while verification read are applied and checked again at the cut-over
        summary.update(equal=not count and not broken, written_meanwhile=len(changed_meanwhile),
                       differing_rows=sum(t.mismatch_count for t in result.tables), mismatches=count,
                       listing=str(listing))
        self.outcome.verification = summary
        if broken:  # a table that could not be compared is never a pass
            raise SwitchError(f"verification could not compare {'; '.join(broken)}; nothing was switched")
        self._save("verify", verification={k: summary[k] for k in summary if k != "tables"})
        if count:
            shown = "; ".join(f"{table} {m.kind} {m.key}" for table, m in real)
            raise SwitchError(f"verification found {count:,} mismatched row(s) (the target holds different "
                              f"data): {shown}; every one is listed in {listing}; nothing was switched")

    def _changed_since_catchup(self, pg) -> set[tuple[str, tuple]]:
        """Keys written on the bootstrap store since the last catch-up: a verification
        mismatch on one of them is a write in flight, which the cut-over applies and checks."""
        import json
        after = (mover.get_pg_state(pg, "catchup") or {"seq": 0})["seq"]
        pg.commit()
        return {(tbl, _norm(tbl, json.loads(key))) for tbl, key in
                self.lite.execute("SELECT tbl, key FROM tier_changes WHERE seq > ?", (after,))}

    def _cutover(self) -> None:
        self._catchup(passes=5)  # what was written while verification read: outside the fence
        for attempt in range(1, self.options.cutover_retries + 1):
            ok, why = self._try_cutover()
            if ok:
                return
            self.say(f"cut-over attempt {attempt}: {why}; the fence is released and the bootstrap tier stays active")
            self._catchup(passes=5)
        raise SwitchError(f"the cut-over did not finish within {self.options.cutover_timeout_s:g} s in "
                          f"{self.options.cutover_retries} attempt(s) ({why}); the bootstrap tier stays active")

    def _try_cutover(self) -> tuple[bool, str]:
        from .delta import verify_keys
        budget = self.options.cutover_timeout_s
        with self._target() as pg:
            self.lite.execute(f"PRAGMA busy_timeout = {int(budget * 1000)}")
            try:
                self.lite.execute("BEGIN IMMEDIATE")  # the fence: clients' writes wait from here
            except sqlite3.OperationalError:
                return False, "the bootstrap store's write lock was not free in time"
            fenced, deadline = time.monotonic(), time.monotonic() + budget
            try:
                pg.execute(f"SET statement_timeout = {int(budget * 1000)}")
                pg.commit()
                _applied, touched = mover.catch_up(self.lite, pg, deadline=deadline)
                after = (mover.get_pg_state(pg, "catchup") or {"seq": 0})["seq"]
                pg.commit()
                left = mover.pending_changes(self.lite, after)
                if left:
                    raise TimeoutError(f"{left} change(s) still to apply when the time ran out")
                different = verify_keys(self.lite, pg, touched)
                if different:
                    raise SwitchError(f"the final delta does not verify: {len(different)} row(s) differ, "
                                      f"first {different[:3]}; nothing was switched")
                with pg.transaction():
                    tracking.install_pg(pg)  # the reverse stream starts before any write can reach the target
                tracking.remove_sqlite(self.lite)
                previous = read_active(self.lite)
                write_active(self.lite, "institutional", self.target_ref, previous)
                state = self.state() or {}
                set_state(self.lite, "switch", {**state, "phase": "replay", "updated_at": now_text()})
                if time.monotonic() > deadline:
                    raise TimeoutError("the flip came after the deadline")
                fault("cutover-flip")
                self.lite.execute("COMMIT")
                self._fenced(fenced)
                self.say(f"cut-over: writes fenced for {self.outcome.fence_ms[-1]:.0f} ms; "
                         "the institutional tier is active")
                return True, ""
            except (TimeoutError, sqlite3.OperationalError) as exc:
                self.lite.execute("ROLLBACK")
                self._fenced(fenced)
                return False, str(exc)
            except BaseException:
                self.lite.execute("ROLLBACK")
                raise
            finally:
                self.lite.execute("PRAGMA busy_timeout = 10000")
                pg.execute("SET statement_timeout = 0")
                pg.commit()

    def _fenced(self, fenced: float) -> None:
        held = time.monotonic() - fenced
        self.outcome.fence_ms.append(held * 1000)
        self.outcome.fence_spans.append((time.time() - held, time.time()))

    def _replay(self) -> None:
        """The bootstrap event log was copied into the target's outbox unpublished: the relay
        publishes it (idempotent by event id), then the hottest keys go into the cache."""
        if self.target.kafka is not None:
            from ..events.relay import Relay
            with Relay(self.target) as relay:
                relay.acquire()
                self.outcome.replayed = relay.drain()
            self.say(f"replay: {self.outcome.replayed:,} event(s) published to {relay.topic}")
        self.outcome.warmed = warm_cache(self.target)


def warm_cache(contract: Contract) -> int:
    """The latest bars of the most recently updated symbols, read once through the new
    tier's cache (up to the cache policy's max_keys)."""
    from ..data import open_backbone
    with open_backbone(contract) as bb:
        if bb.tier != "institutional":
            return 0
        limit = bb.cache.policy.max_keys
        symbols = [r[0] for r in bb.store.query(
            "SELECT symbol FROM daily_bars GROUP BY symbol ORDER BY max(ts) DESC LIMIT %(n)s", {"n": limit})]
        for i in range(0, len(symbols), 50):
            bb.latest_bars(symbols[i:i + 50])
        return len(symbols)
