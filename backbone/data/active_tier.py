"""The active-tier record: which tier a deployment's clients use, kept in the bootstrap
store (`tier_state`, name `active`), the one place both ends of a switch can read.

One record in one SQLite row: exactly one tier is active at any time, by construction. A
switch flips it inside the bootstrap store's write lock (the fence), so a client's write
transaction, which reads the record right after taking that lock, either runs before the
flip on the bootstrap store or after it on the new tier (`TierMoved`), never on both.

No record (a store never switched, or not migrated to 0004): the bootstrap store while it
exists (nothing has cut over yet, `follow.before_first_cutover`), else the contract's own tier.
`target` names where the institutional contract comes from (an outputs file or a Pulumi
stack), never its secrets: clients load it themselves when they follow a switch.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BackboneError

ACTIVE = "active"


@dataclass(frozen=True)
class ActiveTier:
    tier: str                 # bootstrap | institutional
    epoch: int                # +1 at every cut-over
    target: dict[str, str]    # {"outputs": path} or {"stack": name}: the institutional contract's source
    since: str                # when the record was written (UTC, ISO 8601)


class TierMoved(BackboneError):
    """A write reached the tier that is no longer active: the client follows and retries."""

    def __init__(self, active: ActiveTier):
        super().__init__(f"the deployment is on the {active.tier} tier now (cut-over {active.epoch})")
        self.active = active


class TierUnreachable(BackboneError):
    """The active tier's contract or services cannot be reached by this client."""


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def get_state(conn: sqlite3.Connection, name: str) -> Any | None:
    """A named value of the bootstrap store's `tier_state`; None when absent (or the store
    has no such table yet)."""
    try:
        row = conn.execute("SELECT value FROM tier_state WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return json.loads(row[0]) if row else None


def set_state(conn: sqlite3.Connection, name: str, value: Any) -> None:
    """Inside the caller's transaction."""
    conn.execute("INSERT INTO tier_state (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                 "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                 (name, json.dumps(value), now_text()))


def read_active(conn: sqlite3.Connection) -> ActiveTier | None:
    value = get_state(conn, ACTIVE)
    return ActiveTier(**value) if value else None


def write_active(conn: sqlite3.Connection, tier: str, target: dict[str, str], previous: ActiveTier | None) -> ActiveTier:
    active = ActiveTier(tier, (previous.epoch if previous else 0) + 1, target, now_text())
    set_state(conn, ACTIVE, asdict(active))
    return active


class RecordReader:
    """Reads the record from a bootstrap store path, for clients on either tier: a
    read-only connection opened on first use (a missing store file means no record)."""

    def __init__(self, store: str | Path, timeout_s: float = 10.0):
        self.path, self.timeout_s = Path(store), timeout_s
        self._conn: sqlite3.Connection | None = None

    def read(self) -> ActiveTier | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s,
                                         isolation_level=None, check_same_thread=False)
        return read_active(self._conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
