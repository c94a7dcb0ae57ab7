"""Timescale probe: connect (auth and TLS as configured), SELECT 1 latency, server
version, timescaledb extension version and background-job health, role, replication of
declared replicas, connection headroom."""
from __future__ import annotations

import time

import psycopg

from ..checks import DOWN, CheckResult, judged
from ..clients import timescale as timescale_client
from ..contract import TimescaleEndpoint

REPLICA_LAG_DEGRADED_S = 10.0
HEADROOM_DEGRADED = 0.10  # less than 10 % of max_connections free


classify_pg_error = timescale_client.classify  # the name tests and callers know


def probe_timescale(ep: TimescaleEndpoint, timeout_s: float) -> CheckResult:
    target = ep.target()
    where = f"{target['host']}:{target['port']}/{target['database']}"
    started = time.perf_counter()
    try:
        with timescale_client.connect(ep, timeout_s, autocommit=True, application_name="backbone-probe") as conn:
            connected = time.perf_counter()
            t0 = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            select_ms = (time.perf_counter() - t0) * 1000
            details = _inspect(conn)
            details["tls"] = conn.pgconn.ssl_in_use
    except psycopg.Error as exc:
        code, reason = classify_pg_error(exc)
        return CheckResult("timescale", DOWN, code, f"Timescale at {where} is down: {reason}.",
                           latency_ms=(time.perf_counter() - started) * 1000, error=str(exc).strip())
    details |= {"select1_ms": round(select_ms, 2), "connect_ms": round((connected - started) * 1000, 2)}
    return judge(ep, where, details, select_ms)


def _inspect(conn: psycopg.Connection) -> dict:
    version = conn.execute("SHOW server_version").fetchone()[0]
    ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    used, limit = conn.execute("SELECT (SELECT count(*) FROM pg_stat_activity), "
                               "current_setting('max_connections')::int").fetchone()
    replicas = []
    if not in_recovery:
        rows = conn.execute("SELECT coalesce(client_addr::text, 'local'), application_name, state, sync_state, "
                            "coalesce(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication").fetchall()
        replicas = [{"address": r[0], "name": r[1], "state": r[2], "sync_state": r[3], "lag_s": float(r[4])}
                    for r in rows]
    return {"server_version": version, "timescaledb": ext[0] if ext else None,
            "role": "standby" if in_recovery else "primary", "connections": used, "max_connections": limit,
            "replicas": replicas, "jobs": _jobs(conn) if ext else None}


def _jobs(conn: psycopg.Connection) -> dict:
    """TimescaleDB's background jobs (policies, continuous aggregate refreshes): how many,
    and those whose last run failed, with the server's reason."""
    query = ("SELECT j.job_id, j.proc_name, j.hypertable_name, s.last_run_status, s.total_failures, {error} "
             "FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.job_stats s USING (job_id) "
             "WHERE j.job_id >= 1000 ORDER BY j.job_id")  # ids below 1000 are the extension's own
    last_error = ("(SELECT e.err_message FROM timescaledb_information.job_errors e WHERE e.job_id = j.job_id "
                  "ORDER BY e.finish_time DESC LIMIT 1)")
    try:
        rows = conn.execute(query.format(error=last_error)).fetchall()
    except psycopg.errors.InsufficientPrivilege:  # job_errors is readable by its owners only
        rows = conn.execute(query.format(error="NULL")).fetchall()
    failing = [{"job_id": r[0], "proc": r[1], "hypertable": r[2], "total_failures": r[4],
                "error": (r[5] or "").strip().splitlines()[0][:200] if r[5] else None}
               for r in rows if r[3] == "Failed"]
    return {"total": len(rows), "failing": failing}


def judge(ep: TimescaleEndpoint, where: str, d: dict, latency_ms: float) -> CheckResult:
    """Pure: the facts gathered -> ok / degraded, with the reasons."""
    problems: list[tuple[str, str]] = []
    if not d["timescaledb"] and ep.require_timescaledb:
        problems.append(("timescaledb_missing", "the timescaledb extension is not installed"))
    if d["role"] != "primary":
        problems.append(("not_primary", "the endpoint is a standby, not the primary"))
    declared = len(ep.replicas)
    streaming = [r for r in d["replicas"] if r["state"] == "streaming"]
    if declared and len(streaming) < declared:
        problems.append(("replica_missing", f"{len(streaming)} of {declared} declared replicas are streaming"))
    lagging = [r for r in streaming if r["lag_s"] > REPLICA_LAG_DEGRADED_S]
    if lagging:
        worst = max(r["lag_s"] for r in lagging)
        problems.append(("replica_lag", f"replica lag {worst:.1f} s exceeds {REPLICA_LAG_DEGRADED_S:g} s"))
    for job in (d.get("jobs") or {}).get("failing", []):
        on = f" on {job['hypertable']}" if job["hypertable"] else ""
        why = f": {job['error']}" if job["error"] else ""
        problems.append(("job_failing", f"background job {job['job_id']} ({job['proc']}{on}) failed its last run{why}"))
    free = 1 - d["connections"] / max(1, d["max_connections"])
    d["connection_headroom"] = round(free, 3)
    if free < HEADROOM_DEGRADED:
        problems.append(("connections_low", f"{d['connections']} of {d['max_connections']} connections in use"))
    jobs = f", {d['jobs']['total']} background job(s)" if d.get("jobs") else ""
    flavour = f"timescaledb {d['timescaledb']}{jobs}" if d["timescaledb"] else (
        "plain PostgreSQL" + ("" if ep.require_timescaledb else ", accepted by the contract"))
    summary = f"PostgreSQL {d['server_version'].split()[0]} {d['role']} at {where} answers ({flavour})"
    return judged("timescale", summary, problems, latency_ms, d)
