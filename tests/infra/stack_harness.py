"""Run infra/__main__.py against Pulumi mocks, one isolated run per call.

Why it looks like this:
- Config and mocks are set before the program runs, and the program is re-run with runpy
  each time (pulumi/examples testing-unit-py).
- Mock tests can hang intermittently (pulumi/pulumi#7663): the SDK's own tests run every
  monitor call inline with an "immediate" executor on a fresh event loop; so does this.
- The Pulumi runtime keeps its settings, config and root stack in ContextVars, so each run
  happens inside a copied context, on a thread of its own with its own event loop: nothing
  leaks into the next test or into other test suites.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra import certificates
from infra.generated import ENCRYPTED_KEYS, SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "infra"
PROJECT = "backbone"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # marks a secret value in serialized inputs


class ImmediateExecutor(ThreadPoolExecutor):
    """Runs submitted work inline; `set_default_executor` insists on a ThreadPoolExecutor."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
            future.set_exception(exc)
        return future


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]


def mock_password(name: str) -> str:
    return f"mock-secret-{name}"


# What `python -m infra.deploy secrets` would have put into the stack's config.
MOCK_CLUSTER_ID = "AAAAAAAAAAAAAAAAAAAAAA"
MOCK_SECRETS = {key: MOCK_CLUSTER_ID if key == "kafka_cluster_id" else mock_password(key.replace("_", "-"))
                for key in SECRET_KEYS}


def mock_contract_secrets(sentinels: bool) -> dict[str, Any]:
    """`backbone_secrets` of an institutional stack run with MOCK_SECRETS."""
    from infra.outputs import SECRET_SOURCES
    out: dict[str, Any] = {}
    for path, key in SECRET_SOURCES.items():
        if path == "redis.sentinel_password" and not sentinels:
            continue
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = MOCK_SECRETS[key]
    return out


_TLS: dict[tuple[str, str], dict[str, str]] = {}


def mock_tls(platform: str, namespace: str) -> dict[str, str]:
    """What the helper would issue for a stack on `platform` in `namespace` (one CA and set of
    leaves per pair, reused across runs: issuing keys costs time)."""
    if (platform, namespace) not in _TLS:
        _TLS[(platform, namespace)] = certificates.material("mock", platform, namespace, {})
    return _TLS[(platform, namespace)]


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource and answers with its inputs plus a few computed outputs."""

    def __init__(self) -> None:
        self.declared: list[Declared] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.declared.append(Declared(args.typ, args.name, args.inputs))
        state = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = f"sha256:{args.name}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None


@dataclass
class StackRun:
    stack: str
    declared: list[Declared]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    urns: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def of_type(self, token: str) -> list[Declared]:
        return [d for d in self.declared if d.type == token]

    def named(self, token: str, name: str) -> Declared:
        matches = [d for d in self.of_type(token) if d.name == name]
        assert len(matches) == 1, f"expected one {token} named {name}, got {[d.name for d in self.of_type(token)]}"
        return matches[0]

    def parent_chain(self, name: str) -> list[str]:
        """Types from the stack down to the resource `name`, read off its URN."""
        [urn] = [u for u in self.urns if u.endswith(f"::{name}")]
        return urn.split("::")[2].split("$")

    def k8s(self, kind: str, name: str) -> Declared:
        """A Kubernetes object by kind and metadata.name."""
        matches = [d for d in self.declared if d.inputs.get("kind") == kind
                   and d.inputs.get("metadata", {}).get("name") == name]
        assert len(matches) == 1, f"expected one {kind} {name}, got {len(matches)}"
        return matches[0]


def stack_file_config(stack: str) -> dict[str, Any]:
    """The `backbone:` values of Pulumi.<stack>.yaml, keys without the prefix."""
    import yaml

    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return {key.split(":", 1)[1]: value for key, value in (document.get("config") or {}).items()
            if key.startswith(f"{PROJECT}:")}


def run_stack(stack: str, config: dict[str, Any], timeout_s: float = 45) -> StackRun:
    """Run the program for `stack` with `config` (keys without the `backbone:` prefix), plus
    MOCK_SECRETS for the generated secrets `config` does not set.

    The run has a thread of its own: its event loop then never replaces the caller's, and a
    run that hangs fails this call after `timeout_s` instead of blocking the session.
    """
    mocks = RecordingMocks()
    # Structured values reach a real program as JSON strings; so they do here.
    tls = mock_tls(str(config.get("platform", "docker")), str(config.get("namespace", "backbone")))
    values = {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
              for key, value in {**MOCK_SECRETS, **tls, **config}.items()}

    def run() -> StackRun:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(ImmediateExecutor())
        asyncio.set_event_loop(loop)
        try:
            return _run_program(stack, values, mocks)
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    outcome: dict[str, Any] = {}

    def thread_main() -> None:
        try:
            outcome["result"] = context.run(run)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    context = contextvars.copy_context()
    worker = threading.Thread(target=thread_main, name=f"pulumi-mocks-{stack}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"the program did not finish within {timeout_s}s under mocks (stack {stack})")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _run_program(stack: str, values: dict[str, str], mocks: RecordingMocks) -> StackRun:
    runtime_config.set_all_config(values, [f"{PROJECT}:{key}" for key in ENCRYPTED_KEYS])
    settings.SETTINGS.outputs = set()
    settings.SETTINGS.lock = threading.Lock()
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    result = StackRun(stack=stack, declared=mocks.declared)
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))
    except Exception as exc:  # noqa: BLE001 - the tests assert on it
        result.error = exc
        return result
    # A URN spells out the parent chain: `...::backbone:docker:Redis$docker:index/...`.
    result.urns = list(settings.SETTINGS.monitor.resources)
    root = settings.get_root_resource()
    for name, value in root.outputs.items():
        output = pulumi.Output.from_input(value)
        result.outputs[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            result.secret_outputs.add(name)
    return result


def plain(value: Any) -> Any:
    """Mock inputs as plain data: secrets unwrapped, whole floats back to ints."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return plain(value.get("value"))
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value
