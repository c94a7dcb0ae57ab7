"""Timescale probe: connect, SELECT 1 latency, server version, timescaledb extension."""
from __future__ import annotations

import math
import time

import psycopg

from ..checks import DEGRADED, DOWN, OK, CheckResult
from ..contract import TimescaleEndpoint


def classify_pg_error(exc: Exception) -> tuple[str, str]:
    text = str(exc).lower()
    if "password authentication failed" in text or "authentication failed" in text:
        return "auth_failed", "authentication failed"
    if "timeout expired" in text or "timed out" in text:
        return "timeout", "no answer in time"
    if "connection refused" in text:
        return "unreachable", "connection refused"
    if "does not exist" in text:
        return "not_found", "database or role does not exist"
    return "unreachable", "cannot connect"


def probe_timescale(ep: TimescaleEndpoint, timeout_s: float) -> CheckResult:
    target = ep.target()
    where = f"{target['host']}:{target['port']}/{target['database']}"
    started = time.perf_counter()
    try:
        # libpq's connect_timeout is whole seconds (minimum 2); the runner's deadline covers the rest.
        with psycopg.connect(ep.dsn(), connect_timeout=max(2, math.ceil(timeout_s)), autocommit=True,
                             application_name="backbone-probe",
                             options=f"-c statement_timeout={int(timeout_s * 1000)}") as conn:
            connected = time.perf_counter()
            t0 = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            select_ms = (time.perf_counter() - t0) * 1000
            version = conn.execute("SHOW server_version").fetchone()[0]
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is not None
    except psycopg.Error as exc:
        code, reason = classify_pg_error(exc)
        return CheckResult("timescale", DOWN, code, f"Timescale at {where} is down: {reason}.",
                           latency_ms=(time.perf_counter() - started) * 1000, error=str(exc).strip())
    details = {"server_version": version, "select1_ms": round(select_ms, 2),
               "connect_ms": round((connected - started) * 1000, 2),
               "timescaledb": ext[0] if ext else None, "timescaledb_available": available}
    if ext:
        return CheckResult("timescale", OK, "ok",
                           f"PostgreSQL {version} with timescaledb {ext[0]} answers at {where}.",
                           latency_ms=select_ms, details=details)
    if ep.require_timescaledb:
        return CheckResult("timescale", DEGRADED, "timescaledb_missing",
                           f"PostgreSQL {version} answers at {where}, but the timescaledb extension is not installed.",
                           latency_ms=select_ms, details=details)
    return CheckResult("timescale", OK, "ok",
                       f"PostgreSQL {version} answers at {where} (plain PostgreSQL, accepted by the contract).",
                       latency_ms=select_ms, details=details)
