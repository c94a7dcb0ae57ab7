"""The tasks `backbone serve` supervises: the relay, the bridge, the scheduled ingest jobs and
cache maintenance. Each is `async def run(ctx)` (see `supervisor.py`) whose blocking work
runs on a worker thread and checks `ctx.stop` between steps; a failure is raised and left to
the supervisor, which restarts the task with backoff.

The ingest jobs themselves (drop directories, generated rows) are in `ingest.py`.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .supervisor import TaskContext, TaskSpec

if TYPE_CHECKING:
    from ..contract import Contract
    from ..data.api import Backbone
    from .metrics import ServeMetrics
    from .schedule import Schedule

SAMPLE_S = 5.0  # how often the outbox backlog and the consumer lag are read
RELAY_NOT_APPLICABLE = "bootstrap tier: the outbox is the event log, there is nothing to relay"


def build_tasks(contract: Contract, schedule: Schedule, bb: Backbone, metrics: ServeMetrics,
                cache_interval_s: float) -> tuple[list[TaskSpec], dict[str, str]]:
    """The tasks for this contract and schedule, and {task: why it does not run here}."""
    from .ingest import IngestJob
    specs, not_applicable = [], {}
    if contract.tier == "institutional":
        specs.append(TaskSpec("relay", "relay", relay_task(contract, metrics)))
    else:
        not_applicable["relay"] = RELAY_NOT_APPLICABLE
    specs.append(TaskSpec("bridge", "bridge", bridge_task(contract, metrics)))
    specs.append(TaskSpec("cache", "cache", cache_task(bb, metrics, cache_interval_s)))
    if contract.bootstrap is not None and contract.timescale is not None:
        specs.append(TaskSpec("tier-reverse", "tier", reverse_task(contract)))
    for job in schedule.jobs:
        specs.append(TaskSpec(f"job:{job.name}", "ingest", IngestJob(job, bb, metrics).run))
    return specs, not_applicable


# --- the relay --------------------------------------------------------------------------------

def relay_task(contract: Contract, metrics: ServeMetrics):
    """Outbox -> Kafka with `Relay.run`. While another relay holds the database's relay lock
    this one stands by (healthy, role "standby") and takes over when the lock comes free."""

    def work(ctx: TaskContext) -> None:
        from ..events.relay import Relay
        relay = Relay(contract)
        sampled = [0.0]

        def sample() -> None:
            if time.monotonic() - sampled[0] >= SAMPLE_S:
                backlog = relay.backlog()
                metrics.backlog(backlog.events, backlog.oldest_age_s)
                ctx.note(backlog=backlog.events)
                sampled[0] = time.monotonic()

        def on_batch(published: int) -> None:  # on the relay's thread, between transactions
            if published:
                metrics.relay_published.inc(published)
                ctx.ran(published=relay.published)
            else:
                ctx.healthy()
            sample()

        try:
            while not ctx.stop.is_set() and not relay.acquire():
                ctx.healthy(role="standby")
                sample()
                ctx.stop.wait(1.0)
            if not ctx.stop.is_set():
                ctx.healthy(role="active")
                relay.run(ctx.stop, idle_s=1.0, on_batch=on_batch)
        finally:
            relay.close()

    async def run(ctx: TaskContext) -> None:
        await ctx.to_thread(work, ctx)
    return run


# --- the bridge -------------------------------------------------------------------------------

def bridge_task(contract: Contract, metrics: ServeMetrics):
    """The contract's consumer group over the events topic (the event log on bootstrap):
    counts what it handles per dimension, and reports its lag every few seconds."""

    def work(ctx: TaskContext) -> None:
        from ..events.bridge import open_bridge
        bridge = open_bridge(contract)
        sampled, duplicates = 0.0, 0

        def handle(event) -> None:
            metrics.consumed(event.dimension)

        try:
            while not ctx.stop.is_set():
                handed = bridge.poll(handle, timeout_s=0.5)
                if bridge.duplicates > duplicates:
                    metrics.events_duplicates.inc(bridge.duplicates - duplicates)
                    duplicates = bridge.duplicates
                if handed:
                    ctx.ran(handled=bridge.handled, duplicates=duplicates)
                elif bridge.assigned:
                    ctx.healthy()
                if time.monotonic() - sampled >= SAMPLE_S and bridge.assigned:
                    lags = bridge.lag()
                    metrics.lag(lags)
                    ctx.note(group=bridge.group, lag=sum(lags.values()))
                    sampled = time.monotonic()
        finally:
            bridge.close()

    async def run(ctx: TaskContext) -> None:
        await ctx.to_thread(work, ctx)
    return run


# --- the tier switch's reverse stream ----------------------------------------------------------

def reverse_task(contract: Contract, interval_s: float = 1.0):
    """While a switch to the institutional tier runs (until `tier complete`), mirror the
    writes made there into the bootstrap store every `interval_s` (backbone.tier.reverse),
    so a rollback has little left to do and a forced one little to lose."""

    def work(ctx: TaskContext) -> None:
        from ..tier.reverse import mirror_once
        while not ctx.stop.is_set():
            mirrored = mirror_once(contract)
            if mirrored is None:
                ctx.healthy(role="idle: no switch running")
            else:
                ctx.ran(mirrored=mirrored)
            ctx.stop.wait(interval_s)

    async def run(ctx: TaskContext) -> None:
        await ctx.to_thread(work, ctx)
    return run


def tier_watch_task(record, tier: str, moved, interval_s: float = 1.0):
    """Every `interval_s`: read the active-tier record (a `RecordReader`); once it names
    another tier than the one these tasks serve, call `moved(that tier)` (serve stops them
    and starts them again there) and end."""

    async def run(ctx: TaskContext) -> None:
        while True:
            active = await ctx.to_thread(record.read)
            if active is not None and active.tier != tier:
                ctx.note(moved_to=active.tier, epoch=active.epoch)
                moved(active.tier)
                return
            ctx.healthy(role=f"following the active-tier record: {tier}")
            if not await ctx.sleep(interval_s):
                return
    return run


# --- cache maintenance ------------------------------------------------------------------------

def cache_task(bb: Backbone, metrics: ServeMetrics, interval_s: float):
    """Every `interval_s`: export the cache counters, and on Redis drop the index entries
    whose cache entries have expired (the index otherwise keeps them until the next write)."""

    async def run(ctx: TaskContext) -> None:
        while True:
            pruned = await ctx.to_thread(maintain_cache, bb, metrics)
            ctx.ran(pruned=pruned)
            if not await ctx.sleep(interval_s):
                return
    return run


def cache_counts(cache) -> dict[str, int]:
    """The shared counters (every process's lookups) when the cache keeps them, else this
    process's own."""
    shared = getattr(cache, "shared_stats", None)
    if callable(shared):
        counts = shared()
        return counts.to_dict() if hasattr(counts, "to_dict") else dict(counts)
    return cache.stats.to_dict()


def maintain_cache(bb: Backbone, metrics: ServeMetrics) -> int:
    metrics.cache_counts(cache_counts(bb.cache))
    client = getattr(bb.cache.backend, "client", None)  # RedisBackend only
    if client is None:
        return 0
    policy = bb.cache.policy
    oldest_live_ms = int(time.time() * 1000) - int(policy.ttl_seconds * 1000)
    pruned = int(client.zremrangebyscore(f"{policy.namespace}:index", "-inf", oldest_live_ms))
    if pruned:
        metrics.cache_index_pruned.inc(pruned)
    return pruned
