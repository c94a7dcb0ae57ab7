"""`backbone serve` as a function: open the data API, build the tasks, supervise them until
SIGTERM / SIGINT (or `run_for_s`), and return the exit code with the final snapshot.

Signals: SIGTERM and SIGINT begin the bounded shutdown (a second one changes nothing: the
bound already holds); SIGUSR1 writes the snapshot (to `snapshot_path`, else one JSON line on
stdout). The snapshot is written the same way at shutdown, and served at `/supervision`
while the metrics endpoint runs.

Serve follows the active-tier record (backbone.tier) as library clients do: its tasks run for
the tier the record names, and when a `tier switch` or `tier rollback` moves it, they stop
within the shutdown bound and start again on the new tier, in the same process.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..contract import Contract
from ..report.redact import Redactor
from .jobs import build_tasks, tier_watch_task
from .metrics import MetricsServer, ServeMetrics
from .schedule import Schedule
from .supervisor import Supervisor, TaskSpec


@dataclass
class ServeOptions:
    schedule: Schedule
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    snapshot_path: Path | None = None
    run_for_s: float | None = None
    shutdown_timeout_s: float = 10.0
    cache_interval_s: float | None = None  # None: the schedule's


def serve(contract: Contract, options: ServeOptions, log: Callable[[str], None]) -> tuple[int, dict[str, Any]]:
    """Run until stopped; (exit code, final snapshot). 0 only when no task and no worker
    thread outlived the shutdown."""
    return asyncio.run(_serve(contract, options, log))


def write_snapshot(snapshot: dict[str, Any], path: Path | None, redactor: Redactor) -> None:
    if path is None:
        sys.stdout.write(redactor.scrub(json.dumps(snapshot, separators=(",", ":"))) + "\n")
        sys.stdout.flush()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(redactor.scrub(json.dumps(snapshot, indent=2)) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a snapshot


class _Run:
    """The supervisor of the current tier, and whether the operator (not a tier move) stopped."""

    def __init__(self) -> None:
        self.supervisor: Supervisor | None = None
        self.stopped_by: str | None = None
        self.moved_to: str | None = None

    def stop(self, reason: str) -> None:
        self.stopped_by = reason
        if self.supervisor is not None:
            self.supervisor.stop(reason)

    def move(self, tier: str) -> None:
        self.moved_to = tier
        if self.supervisor is not None:
            self.supervisor.stop(f"the active tier moved to {tier}")

    def snapshot(self) -> dict[str, Any]:
        return self.supervisor.snapshot() if self.supervisor is not None else {"status": "starting"}


async def _serve(contract: Contract, options: ServeOptions, log: Callable[[str], None]) -> tuple[int, dict]:
    from ..data.follow import contract_for
    from ..data.active_tier import RecordReader
    redactor = Redactor(contract.secrets())
    metrics = ServeMetrics(relay=False)
    for job in options.schedule.jobs:
        if job.drop_dir is not None and not job.drop_dir.is_dir():
            log(f"job {job.name}: drop_dir {job.drop_dir} does not exist (yet); the job fails until it does")
    record = RecordReader(contract.bootstrap.store) if contract.bootstrap is not None else None
    run, moves = _Run(), []
    server = None
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    timer = None
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, run.stop, sig.name)
            handled.append(sig)
        loop.add_signal_handler(signal.SIGUSR1, lambda: write_snapshot(run.snapshot(), options.snapshot_path, redactor))
        handled.append(signal.SIGUSR1)
        if options.metrics_port is not None:  # after the handlers: whoever sees the port may signal
            server = MetricsServer(metrics, run.snapshot, options.metrics_host, options.metrics_port)
            log(f"metrics on {server.url}/metrics, supervision snapshot on {server.url}/supervision")
        if options.run_for_s is not None:
            timer = loop.call_later(options.run_for_s, run.stop, f"--run-for {options.run_for_s:g} s")
        while True:
            active = contract_for(contract, record.read()) if record is not None else contract
            final = await _serve_tier(active, options, log, redactor, metrics, run, record, moves, server)
            if run.stopped_by is not None or run.moved_to is None:
                break
            stopped = final["shutdown"]  # a worker still running on the old tier is reported, not hidden
            moves.append({"to": run.moved_to, "at": final["taken_at"], "stopped_in_s": stopped["seconds"],
                          "threads_left": stopped["threads_left"], "cancelled": stopped["cancelled"]})
            log(f"the active tier moved to {run.moved_to}: starting the tasks again on it")
            run.moved_to = None
    finally:
        if timer is not None:
            timer.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)
        if server is not None:
            server.close()
        if record is not None:
            record.close()
    shutdown = final["shutdown"]
    # the whole loop, not only what the supervisor started: nothing but this task may remain
    shutdown["orphaned_tasks"] = max(shutdown["orphaned_tasks"],
                                     len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()]))
    write_snapshot(final, options.snapshot_path, redactor)
    clean = shutdown["orphaned_tasks"] == 0 and shutdown["threads_left"] == 0
    return (0 if clean else 1), final


async def _serve_tier(contract: Contract, options: ServeOptions, log: Callable[[str], None], redactor: Redactor,
                      metrics: ServeMetrics, run: _Run, record, moves: list, server) -> dict[str, Any]:
    """Supervise the tasks of one tier until a stop or a tier move; the final snapshot."""
    from ..data import open_backbone
    cache_interval_s = options.cache_interval_s or options.schedule.cache_interval_s
    if contract.tier == "institutional":
        metrics.enable_relay()
    bb = open_backbone(contract, warn=log)
    supervisor = None
    try:
        specs, not_applicable = build_tasks(contract, options.schedule, bb, metrics, cache_interval_s)
        if record is not None:
            specs.append(TaskSpec("tier-watch", "tier", tier_watch_task(record, contract.tier, run.move)))
        info: dict[str, Any] = {"tier": contract.tier, "environment": contract.environment,
                                "schedule": str(options.schedule.path), "pid": os.getpid(), "tier_moves": moves}
        if not_applicable:
            info["not_applicable"] = not_applicable
            for name, why in not_applicable.items():
                log(f"{name}: not applicable ({why})")
        if server is not None:
            info["metrics"] = f"{server.url}/metrics"
        supervisor = Supervisor(specs, options.shutdown_timeout_s, redactor=redactor, log=log, info=info)
        metrics.supervisor = run.supervisor = supervisor
        if run.stopped_by is not None:  # a signal came while this tier was being opened
            supervisor.stop(run.stopped_by)
        log(f"serving {len(specs)} task(s) on the {contract.tier} tier; SIGTERM or Ctrl-C stops, "
            f"SIGUSR1 writes the snapshot")
        return await supervisor.run()
    finally:
        if supervisor is None or supervisor.shutdown is None or supervisor.shutdown["threads_left"] == 0:
            bb.close()  # never under a worker thread still using it
