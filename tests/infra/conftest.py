"""Fixtures for the Pulumi program's mock tests (see stack_harness.py for how runs are isolated)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `import infra` from the project root, as Pulumi's run does
    sys.path.insert(0, _ROOT)

from stack_harness import StackRun, run_stack, stack_file_config  # noqa: E402


def _run(stack: str, config: dict) -> StackRun:
    result = run_stack(stack, config)
    if result.error is not None:
        raise AssertionError(f"stack {stack} failed: {result.error!r}") from result.error
    return result


# Module-scoped: a run is pure recorded data, and each module reads it many times.
@pytest.fixture(scope="module")
def dev_run() -> StackRun:
    return _run("dev", stack_file_config("dev"))


@pytest.fixture(scope="module")
def staging_run() -> StackRun:
    return _run("staging", stack_file_config("staging"))


@pytest.fixture(scope="module")
def bootstrap_run() -> StackRun:
    return _run("local", {"tier": "bootstrap", "bootstrap_store": "/var/lib/backbone/store.db"})
