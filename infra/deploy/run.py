"""`up`, `preview` and `destroy` of a stack with the real engine, through the Automation API's
inline program: the CLI plans and applies, and runs the program (infra/program.py: main) by
connecting back to this process, so no Python language host needs to be installed.

What each run changed is summarised from the engine's own events: per resource the step
(`create`, `update`, `replace`, ...), the top-level properties that differ and those that
force a replacement. Property values are never part of it.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from infra.deploy.workspace import Workspace
from infra.program import main as program
from infra.spec_errors import PROJECT


class DeployFailed(RuntimeError):
    """The engine refused or failed the operation; `message` is its error line(s)."""

    def __init__(self, message: str, bad_config: bool):
        super().__init__(message)
        self.bad_config = bad_config


@dataclass
class Summary:
    stack: str
    operation: str
    changes: dict[str, int] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "operation": self.operation, "changes": self.changes, "steps": self.steps}


def run(workspace: Workspace, stack_name: str, operation: str, progress: Callable[[str], None] | None = None) -> Summary:
    from pulumi import automation as auto

    command = auto.PulumiCommand(root=str(workspace.pulumi.parent.parent), skip_version_check=True)
    options = auto.LocalWorkspaceOptions(work_dir=str(workspace.project_dir), pulumi_command=command,
                                         env_vars=workspace.env)
    stack = auto.select_stack(stack_name=stack_name, project_name=PROJECT, program=program, opts=options)
    summary = Summary(stack_name, operation)
    steps: list[dict[str, Any]] = []

    def on_event(event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and not pre.metadata.type.startswith("pulumi:providers:"):
            steps.append(_step(pre.metadata))

    out = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    kwargs = {"on_output": out, "on_event": on_event, "color": "never"}
    try:
        if operation == "up":
            stack.up(show_secrets=False, suppress_outputs=True, **kwargs)
        elif operation == "preview":
            stack.preview(suppress_outputs=True, **kwargs)
        elif operation == "destroy":
            stack.destroy(**kwargs)
        else:
            raise ValueError(f"unknown operation {operation!r}")
    except auto.errors.CommandError as err:
        raise _failed(err) from None
    counts = Counter(step["op"] for step in steps)
    summary.changes = dict(sorted(counts.items()))
    summary.steps = [step for step in steps if step["op"] != "same"]
    return summary


def _step(meta: Any) -> dict[str, Any]:
    op = meta.op.value if hasattr(meta.op, "value") else str(meta.op)
    detailed = meta.detailed_diff or {}
    return {
        "op": op, "type": meta.type, "name": meta.urn.rsplit("::", 1)[-1], "urn": meta.urn,
        # top-level property names only; `keys` are the ones whose change forces a replacement
        "diffs": sorted(set(meta.diffs or [])),
        "replace_keys": sorted(set(meta.keys or [])),
        # property path -> add / update / delete, with `-replace` when that change forces one
        "detailed_diff": {path: _kind(diff) for path, diff in sorted(detailed.items())},
    }


def _kind(diff: Any) -> str:
    kind = getattr(diff, "diff_kind", diff)
    return getattr(kind, "value", str(kind))


def _failed(err: Exception) -> DeployFailed:
    text = str(err)  # the CLI's exit code, stdout and stderr (its display masks secrets)
    # CommandError's text labels the CLI's streams: " stderr: error: ..."
    lines = [re.sub(r"^\s*(stdout|stderr):\s*", "", line).rstrip() for line in text.splitlines() if line.strip()]
    # the CLI's own config-schema check, or the program's spec check (infra/program.py)
    bad_config = any("validating stack config" in line or "invalid stack config" in line for line in lines)
    wanted = [line.strip() for line in lines if line.strip().startswith(("error:", "backbone:"))]
    keep = wanted or lines[-5:] or ["the pulumi CLI failed without a message"]
    return DeployFailed("\n".join(dict.fromkeys(keep)), bad_config)
