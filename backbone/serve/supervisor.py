"""The supervisor of `backbone serve`: long-running tasks under one TaskGroup, each restarted
with backoff when it fails, none able to take the others down, all of them gone at shutdown.

A task is `async def run(ctx)` that loops until `ctx.stopping`. Blocking work (database,
Kafka, files) runs on the supervisor's own worker threads (`ctx.to_thread`), so the threads
it leaves behind can be counted; such work checks `ctx.stop` (a `threading.Event`) between
steps. The supervisor knows nothing about ingest or Kafka: `jobs.py` builds the tasks.

- States: starting (until its first success) -> running; backoff after a failure; stopped
  at shutdown; failed when restarting cannot help (a `ConfigError`) or it outlived the bound.
- Backoff: 0.5 s, doubling to a 30 s cap, back to 0.5 s once the task has succeeded again.
- Shutdown: `stop()` sets the flags; tasks get half the bound to finish their step, then
  `ctx.abort` tells work in flight to roll back; at the bound what is left is cancelled.
  Afterwards no task started during `run` may remain (`orphaned_tasks`) and no worker
  thread may be alive (`threads_left`): the snapshot records both, and `serve` exits 1
  unless both are 0.
- Errors are scrubbed of the contract's secrets before they reach the snapshot or the log.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..errors import ConfigError
from ..report.redact import Redactor

STATES = ("starting", "running", "backoff", "stopped", "failed")
THREAD_PREFIX = "backbone-serve"
_instances = itertools.count(1)


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, failures: int) -> float:
        """The pause before the restart that follows `failures` failures in a row."""
        return min(self.cap_s, self.first_s * 2 ** max(0, failures - 1))


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # relay | bridge | ingest | cache | ... (shown in the snapshot)
    run: Callable[["TaskContext"], Awaitable[None]]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class TaskState:
    """What the snapshot says about one task. Written from the event loop and from the
    task's worker thread, read by the metrics server's thread: hence the lock."""

    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        self.state = "starting"
        self.runs = self.restarts = self.failures = 0  # failures: in a row, for the backoff
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_success: str | None = None
        self.detail: dict[str, Any] = {}
        self.lock = threading.Lock()

    def set(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"kind": self.kind, "state": self.state, "runs": self.runs, "restarts": self.restarts,
                    "last_error": self.last_error, "last_error_at": self.last_error_at,
                    "last_success": self.last_success, "detail": dict(self.detail)}


class TaskContext:
    """What a running task sees of its supervisor."""

    def __init__(self, supervisor: "Supervisor", state: TaskState):
        self._sup, self._state = supervisor, state
        self.name = state.name
        self.stop: threading.Event = supervisor.stop_flag     # shutdown requested: finish the step
        self.abort: threading.Event = supervisor.abort_flag   # shutdown overdue: roll the step back

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Pause, waking at once on shutdown; False when the task should return."""
        if seconds > 0 and not self.stopping:
            try:
                async with asyncio.timeout(seconds):
                    await self._sup._stopping.wait()
            except TimeoutError:
                pass
        return not self.stopping

    async def to_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._sup._executor, functools.partial(fn, *args, **kwargs))

    def healthy(self, **detail: Any) -> None:
        """The task is doing its work (thread-safe): running, backoff reset."""
        with self._state.lock:
            if self._state.state in ("starting", "backoff"):
                self._state.state = "running"
            self._state.failures = 0
            self._state.last_success = _now()
            self._state.detail.update(detail)

    def ran(self, **detail: Any) -> None:
        """One unit of work done (a scheduled run, a batch): healthy, and counted."""
        self.healthy(**detail)
        with self._state.lock:
            self._state.runs += 1

    def problem(self, message: str) -> None:
        """An error worth reporting that restarting would not fix (e.g. a refused file)."""
        message = self._sup.scrub(message)
        self._state.set(last_error=message, last_error_at=_now())
        self._sup.log(f"task {self.name}: {message}")

    def note(self, **detail: Any) -> None:
        with self._state.lock:
            self._state.detail.update(detail)


class Supervisor:
    def __init__(self, specs: list[TaskSpec], shutdown_timeout_s: float = 10.0, backoff: Backoff = Backoff(),
                 redactor: Redactor | None = None, log: Callable[[str], None] | None = None,
                 info: dict[str, Any] | None = None):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique: {names}")
        self.specs, self.shutdown_timeout_s, self.backoff = list(specs), shutdown_timeout_s, backoff
        self.redactor = redactor or Redactor()
        self._log = log or (lambda line: None)
        self.info = dict(info or {})
        self.states = {s.name: TaskState(s.name, s.kind) for s in specs}
        self.stop_flag, self.abort_flag = threading.Event(), threading.Event()
        self.stop_reason: str | None = None
        self._stop_at: float | None = None
        self.shutdown: dict[str, Any] | None = None
        self.started_at: str | None = None
        self._started = time.monotonic()
        self._stopping: asyncio.Event | None = None
        self._threads = f"{THREAD_PREFIX}-{next(_instances)}"
        self._executor = ThreadPoolExecutor(max_workers=len(specs) + 2, thread_name_prefix=self._threads)

    def scrub(self, text: str) -> str:
        return self.redactor.scrub(text)

    def log(self, line: str) -> None:
        self._log(self.scrub(line))

    # --- control ------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Begin the shutdown (call it on the event loop's thread: a signal handler, a task)."""
        if self.stop_flag.is_set():
            return
        self.stop_reason = reason
        self._stop_at = time.monotonic()
        self.stop_flag.set()
        if self._stopping is not None:
            self._stopping.set()
        self.log(f"stopping ({reason}); bound {self.shutdown_timeout_s:g} s")

    async def run(self) -> dict[str, Any]:
        """Supervise every task until `stop()`, shut down within the bound, and return the
        final snapshot (with its `shutdown` section)."""
        self._stopping = asyncio.Event()
        if self.stop_flag.is_set():
            self._stopping.set()
        self.started_at, self._started = _now(), time.monotonic()
        before = asyncio.all_tasks()  # the caller's own tasks are not ours to count
        cancelled: list[str] = []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {group.create_task(self._supervise(spec), name=f"serve:{spec.name}"): spec.name
                         for spec in self.specs}
                await self._stopping.wait()
                bound = self.shutdown_timeout_s
                _, pending = await asyncio.wait(tasks, timeout=bound / 2)
                if pending:
                    self.abort_flag.set()  # work in flight rolls back instead of finishing
                    _, pending = await asyncio.wait(pending, timeout=max(0.0, bound - self._since_stop()))
                for task in pending:
                    name = tasks[task]
                    cancelled.append(name)
                    self.states[name].set(state="failed", last_error_at=_now(),
                                          last_error=f"did not stop within {bound:g} s; cancelled")
                    task.cancel()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
        threads_left = self._join_threads(max(1.0, self.shutdown_timeout_s - self._since_stop()))
        orphaned = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in before]
        self.shutdown = {"reason": self.stop_reason, "seconds": round(self._since_stop(), 3),
                         "bound_s": self.shutdown_timeout_s, "cancelled": cancelled,
                         "orphaned_tasks": len(orphaned), "threads_left": len(threads_left)}
        self.log(f"stopped in {self.shutdown['seconds']:.1f} s: {len(orphaned)} task(s) and "
                 f"{len(threads_left)} worker thread(s) left")
        return self.snapshot()

    def _since_stop(self) -> float:
        return 0.0 if self._stop_at is None else time.monotonic() - self._stop_at

    def _join_threads(self, within_s: float) -> list[threading.Thread]:
        deadline = time.monotonic() + within_s
        mine = [t for t in threading.enumerate() if t.name.startswith(self._threads + "_")]
        for thread in mine:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in mine if t.is_alive()]

    # --- one task -------------------------------------------------------------------------

    async def _supervise(self, spec: TaskSpec) -> None:
        state = self.states[spec.name]
        while not self.stop_flag.is_set():
            ctx = TaskContext(self, state)
            if state.restarts == 0 and state.failures == 0:
                self.log(f"task {spec.name} started ({spec.kind})")
            try:
                await spec.run(ctx)
                if self.stop_flag.is_set():
                    break
                raise RuntimeError("the task returned before shutdown")
            except ConfigError as exc:  # restarting cannot fix configuration
                message = self.scrub(str(exc))
                state.set(state="failed", last_error=message, last_error_at=_now())
                self.log(f"task {spec.name} failed and will not be restarted: {message}")
                return
            except Exception as exc:
                message = self.scrub(_describe(exc))
                with state.lock:
                    state.last_error, state.last_error_at = message, _now()
                    state.failures += 1
                    failures = state.failures
                if self.stop_flag.is_set():
                    break
                delay = self.backoff.delay(failures)
                state.set(state="backoff")
                self.log(f"task {spec.name} failed: {message}; restarting in {delay:g} s")
                if not await ctx.sleep(delay):
                    break
                with state.lock:
                    state.restarts += 1
                    state.state = "starting"
                self.log(f"task {spec.name} restarted (restart {state.restarts})")
        state.set(state="stopped")

    # --- the snapshot ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The supervision snapshot: JSON-ready, safe to take from any thread."""
        if self.shutdown is not None:
            status = "stopped"
        else:
            status = "stopping" if self.stop_flag.is_set() else "running" if self.started_at else "starting"
        return {"service": "backbone serve", **self.info, "status": status, "started_at": self.started_at,
                "taken_at": _now(), "uptime_s": round(time.monotonic() - self._started, 3),
                "tasks": {name: s.to_dict() for name, s in self.states.items()},
                "shutdown": self.shutdown}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
