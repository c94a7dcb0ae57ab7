"""The supervisor with plain tasks: restarts with backoff, isolation, bounded shutdown with
nothing left behind, the snapshot, and secrets kept out of it."""
import asyncio
import json
import threading
import time

import pytest

from backbone.errors import ConfigError
from backbone.report import Redactor
from backbone.serve.supervisor import Backoff, Supervisor, TaskSpec

FAST = Backoff(first_s=0.02, cap_s=0.08)
SECRET = "s3cr3t-Passw0rd"


async def until(condition, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def others() -> list:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def ticking(ctx):
    """A healthy periodic task."""
    while await ctx.sleep(0.01):
        ctx.ran(ticks=ctx._state.runs + 1)


def director(supervisor, ready) -> TaskSpec:
    """A supervised task that stops `supervisor()` once `ready()`: the test can then await
    `run()` itself, and check that no task at all is left in the loop afterwards."""
    async def run(ctx):
        while not ready():
            if not await ctx.sleep(0.01):
                return
        supervisor().stop("SIGTERM")
    return TaskSpec("director", "test", run)


def test_backoff_doubles_to_its_cap():
    assert [Backoff().delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


@pytest.mark.asyncio
async def test_a_failing_task_restarts_with_backoff_while_another_keeps_running():
    starts: list[float] = []

    async def failing(ctx):
        starts.append(time.monotonic())
        raise RuntimeError("boom")

    log: list[str] = []
    sup = Supervisor([TaskSpec("good", "test", ticking), TaskSpec("bad", "test", failing)],
                     shutdown_timeout_s=2, backoff=FAST, log=log.append)
    runner = asyncio.create_task(sup.run())
    await until(lambda: sup.states["bad"].restarts >= 4)
    runs_then = sup.states["good"].runs
    await until(lambda: sup.states["good"].runs > runs_then + 3)  # the good one carries on
    bad = sup.snapshot()["tasks"]["bad"]
    assert bad["state"] in ("backoff", "starting") and bad["last_error"] == "RuntimeError: boom"
    assert bad["runs"] == 0 and bad["last_success"] is None
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    for failures, gap in enumerate(gaps[:4], 1):  # never sooner than the backoff says
        assert gap >= FAST.delay(failures) * 0.9, (failures, gaps)
    sup.stop("test")
    final = await runner
    assert final["tasks"]["good"]["state"] == final["tasks"]["bad"]["state"] == "stopped"
    assert final["tasks"]["good"]["restarts"] == 0 and final["tasks"]["bad"]["restarts"] >= 4
    assert any("task bad failed: RuntimeError: boom; restarting in 0.02 s" in line for line in log)
    assert others() == []


@pytest.mark.asyncio
async def test_the_backoff_resets_once_the_task_succeeds_again():
    attempts = [0]

    async def flaky(ctx):
        attempts[0] += 1
        if attempts[0] in (1, 2, 3):
            raise OSError("not yet")
        ctx.ran()
        while await ctx.sleep(0.01):
            pass

    sup = Supervisor([TaskSpec("flaky", "test", flaky)], backoff=FAST)
    runner = asyncio.create_task(sup.run())
    await until(lambda: sup.states["flaky"].runs == 1)
    state = sup.states["flaky"]
    assert (state.state, state.failures, state.restarts) == ("running", 0, 3)
    assert state.last_error == "OSError: not yet"  # the last error stays on record
    sup.stop()
    await runner


@pytest.mark.asyncio
async def test_a_config_error_fails_the_task_for_good():
    calls = [0]

    async def misconfigured(ctx):
        calls[0] += 1
        raise ConfigError("data.events_topic 'x' is not declared")

    sup = Supervisor([TaskSpec("relay", "relay", misconfigured), TaskSpec("good", "test", ticking)], backoff=FAST)
    runner = asyncio.create_task(sup.run())
    await until(lambda: sup.states["relay"].state == "failed")
    await until(lambda: sup.states["good"].runs > 3)
    assert calls[0] == 1 and sup.states["relay"].restarts == 0
    sup.stop()
    final = await runner
    assert final["tasks"]["relay"]["state"] == "failed" and final["tasks"]["good"]["state"] == "stopped"
    assert final["tasks"]["relay"]["last_error"] == "data.events_topic 'x' is not declared"


@pytest.mark.asyncio
async def test_a_task_that_returns_early_is_restarted():
    async def quits(ctx):
        ctx.ran()

    sup = Supervisor([TaskSpec("quits", "test", quits)], backoff=FAST)
    runner = asyncio.create_task(sup.run())
    await until(lambda: sup.states["quits"].restarts >= 2)
    assert "returned before shutdown" in sup.states["quits"].last_error
    sup.stop()
    await runner


@pytest.mark.asyncio
async def test_stop_ends_every_task_within_the_bound_and_leaves_nothing():
    finished = []

    async def blocking(ctx):
        def work():  # blocking work on a worker thread that looks at the stop flag between steps
            while not ctx.stop.wait(0.05):
                ctx.healthy()
            finished.append("blocking")
        await ctx.to_thread(work)

    async def rolls_back(ctx):
        def work():  # ignores `stop`, gives up on `abort` (half the bound)
            while not ctx.abort.wait(0.05):
                ctx.healthy()
            finished.append("rolled back")
        await ctx.to_thread(work)

    async def failing(ctx):
        raise RuntimeError("always")

    specs = [TaskSpec("ticking", "test", ticking), TaskSpec("blocking", "test", blocking),
             TaskSpec("rolls-back", "test", rolls_back), TaskSpec("failing", "test", failing)]
    at_stop = {}

    def ready() -> bool:
        if not all(sup.states[s.name].last_success or sup.states[s.name].last_error for s in specs):
            return False
        at_stop.update({name: s.state for name, s in sup.states.items()})
        return True

    sup = Supervisor([*specs, director(lambda: sup, ready)], shutdown_timeout_s=2.0,
                     backoff=Backoff(first_s=5, cap_s=5))
    final = await sup.run()
    assert at_stop["failing"] == "backoff"  # waiting 5 s: the stop cut that short
    shutdown = final["shutdown"]
    assert shutdown["orphaned_tasks"] == 0 and shutdown["threads_left"] == 0 and shutdown["cancelled"] == []
    assert shutdown["reason"] == "SIGTERM" and shutdown["seconds"] <= shutdown["bound_s"]
    assert {name: t["state"] for name, t in final["tasks"].items()} == dict.fromkeys(sup.states, "stopped")
    assert sorted(finished) == ["blocking", "rolled back"]
    assert final["status"] == "stopped"
    assert others() == []  # nothing at all left in the loop, not only nothing of the supervisor's
    assert not [t for t in threading.enumerate() if t.name.startswith(sup._threads)]


@pytest.mark.asyncio
async def test_a_task_that_outlives_the_bound_is_cancelled_and_counted():
    release = threading.Event()

    async def stuck(ctx):
        await ctx.to_thread(release.wait, 30)  # ignores stop and abort alike

    sup = Supervisor([TaskSpec("stuck", "test", stuck), TaskSpec("ticking", "test", ticking),
                      director(lambda: sup, lambda: sup.states["ticking"].runs > 0)], shutdown_timeout_s=0.3)
    try:
        final = await sup.run()
    finally:
        release.set()
    assert final["shutdown"]["cancelled"] == ["stuck"] and final["shutdown"]["threads_left"] == 1
    assert final["shutdown"]["orphaned_tasks"] == 0 and others() == []
    assert final["tasks"]["stuck"]["state"] == "failed"
    assert "did not stop within 0.3 s" in final["tasks"]["stuck"]["last_error"]
    assert final["tasks"]["ticking"]["state"] == "stopped"


@pytest.mark.asyncio
async def test_the_snapshot():
    async def noted(ctx):
        ctx.note(role="standby")
        ctx.ran(published=3)
        ctx.problem("a.csv refused")
        while await ctx.sleep(0.01):
            pass

    sup = Supervisor([TaskSpec("relay", "relay", noted)], info={"tier": "institutional"})
    assert sup.snapshot()["status"] == "starting"
    runner = asyncio.create_task(sup.run())
    await until(lambda: sup.states["relay"].runs == 1 and sup.states["relay"].last_error)
    snap = json.loads(json.dumps(sup.snapshot()))  # JSON-ready
    assert snap["service"] == "backbone serve" and snap["tier"] == "institutional" and snap["status"] == "running"
    assert snap["shutdown"] is None and snap["started_at"] and snap["uptime_s"] >= 0
    relay = snap["tasks"]["relay"]
    assert relay["kind"] == "relay" and relay["state"] == "running" and relay["runs"] == 1
    assert relay["restarts"] == 0 and relay["last_success"] and relay["last_error_at"]
    assert relay["last_error"] == "a.csv refused"  # reported, not restarted
    assert relay["detail"] == {"role": "standby", "published": 3}
    sup.stop()
    final = await runner
    assert set(final["shutdown"]) == {"reason", "seconds", "bound_s", "cancelled", "orphaned_tasks", "threads_left"}


@pytest.mark.asyncio
async def test_a_secret_in_an_error_never_reaches_the_snapshot_or_the_log():
    async def leaky(ctx):
        ctx.problem(f"login with password {SECRET} refused")
        raise RuntimeError(f"cannot connect to postgresql://backbone:{SECRET}@db:5432/backbone")

    log: list[str] = []
    sup = Supervisor([TaskSpec("leaky", "test", leaky)], backoff=FAST, redactor=Redactor([SECRET]), log=log.append)
    runner = asyncio.create_task(sup.run())
    await until(lambda: sup.states["leaky"].restarts >= 1)
    text = json.dumps(sup.snapshot())
    sup.stop()
    final = await runner
    assert SECRET not in text and SECRET not in json.dumps(final) and not [line for line in log if SECRET in line]
    assert final["tasks"]["leaky"]["last_error"] == "RuntimeError: cannot connect to postgresql://backbone:***@db:5432/backbone"
    assert any("password *** refused" in line for line in log)
