"""Timescale policy drift: what the contract declares for each hypertable (chunk interval,
retention, compression) against what the database has.

Queries go through `scalar(sql, params)` with the driver's own `%(name)s` parameters, so
the same code serves the plain psycopg session of the readiness check and the
SQLAlchemy connection of `migrate apply`. Table names come only from `HYPERTABLES`
(config keys are validated against it) and every value is bound, never spliced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .state import Timescale

# table -> time column, for the tables that become hypertables where TimescaleDB exists
HYPERTABLES = {"daily_bars": "ts", "intraday_trades": "ts", "macro_events": "ts"}

Scalar = Callable[[str, dict], Any]


@dataclass
class PolicyDiff:
    table: str
    setting: str
    declared: str
    actual: str

    def sentence(self) -> str:
        return f"{self.table}: {self.setting} is {self.actual}, declared {self.declared}"


def timescale_status(scalar: Scalar) -> Timescale:
    installed = scalar("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'", {})
    available = scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'", {})
    preloaded = scalar("SELECT 'timescaledb' = ANY(string_to_array(replace("
                       "current_setting('shared_preload_libraries'), ' ', ''), ','))", {})
    return Timescale(installed, bool(available), bool(preloaded))


def _days(n: int | None) -> str:
    return "none" if n is None else f"{n} days"


def policy_diffs(scalar: Scalar, policies: Mapping[str, Any]) -> list[PolicyDiff]:
    """`policies`: table -> the contract's TablePolicy (chunk_interval_days, retention_days,
    compress_after_days)."""
    diffs = []
    for table, column in HYPERTABLES.items():
        want = policies.get(table)
        hyper = scalar("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = %(t)s",
                       {"t": table})
        if not hyper:
            diffs.append(PolicyDiff(table, "hypertable", f"on {column}", "a plain table"))
            continue
        if want is None:
            continue
        chunk = scalar("SELECT extract(epoch FROM time_interval)::bigint FROM timescaledb_information.dimensions "
                       "WHERE hypertable_name = %(t)s", {"t": table})
        if chunk != want.chunk_interval_days * 86400:
            diffs.append(PolicyDiff(table, "chunk interval", _days(want.chunk_interval_days),
                                    f"{chunk / 86400:g} days" if chunk else "unknown"))
        for setting, proc, key, days in (("retention", "policy_retention", "drop_after", want.retention_days),
                                         ("compression after", "policy_compression", "compress_after",
                                          want.compress_after_days)):
            actual = _job_interval_days(scalar, table, proc, key)
            if actual != days:
                diffs.append(PolicyDiff(table, setting, _days(days), _days(actual) if actual is None or
                                        actual == int(actual) else f"{actual:g} days"))
    return diffs


def endpoint_diffs(scalar: Scalar, timescale: Any) -> list[PolicyDiff]:
    """Every policy difference for the contract's timescale section."""
    return policy_diffs(scalar, timescale.policies) + candle_diffs(scalar, timescale.candles)


CANDLES = "candles_1m"  # the continuous aggregate of 1-minute OHLCV candles from intraday_trades


def candle_diffs(scalar: Scalar, want: Any) -> list[PolicyDiff]:
    """The candles continuous aggregate and its refresh policy against the contract's
    `timescale.candles` (refresh window, lag, schedule)."""
    exists = scalar("SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_name = %(v)s",
                    {"v": CANDLES})
    if not exists:
        return [PolicyDiff(CANDLES, "continuous aggregate", "1-minute candles from intraday_trades", "missing")]
    row = scalar("SELECT jsonb_build_array(extract(epoch FROM (j.config ->> 'start_offset')::interval), "
                 "extract(epoch FROM (j.config ->> 'end_offset')::interval), extract(epoch FROM j.schedule_interval)) "
                 "FROM timescaledb_information.jobs j "  # a refresh job names the aggregate's view
                 "WHERE j.hypertable_name = %(v)s AND j.proc_name = 'policy_refresh_continuous_aggregate'",
                 {"v": CANDLES})
    declared = [want.refresh_window_hours * 3600, want.refresh_lag_minutes * 60, want.refresh_every_minutes * 60]
    if row is None:
        return [PolicyDiff(CANDLES, "refresh policy", _refresh(declared), "none")]
    actual = [float(x) for x in row]
    return [] if actual == declared else [PolicyDiff(CANDLES, "refresh policy", _refresh(declared), _refresh(actual))]


def _refresh(seconds: list[float]) -> str:
    window, lag, every = seconds
    return f"window {window / 3600:g} h, lag {lag / 60:g} min, every {every / 60:g} min"


def _job_interval_days(scalar: Scalar, table: str, proc: str, key: str) -> float | None:
    seconds = scalar("SELECT extract(epoch FROM (config ->> %(key)s)::interval) FROM timescaledb_information.jobs "
                     "WHERE hypertable_name = %(t)s AND proc_name = %(proc)s", {"t": table, "proc": proc, "key": key})
    if seconds is None:
        return None
    days = float(seconds) / 86400
    return int(days) if days == int(days) else days
