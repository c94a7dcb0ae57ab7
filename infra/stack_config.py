"""Read the stack's `backbone:*` config into the plain dict `infra.spec.build_spec` takes.

The only module that talks to `pulumi.Config`, so the spec stays testable as plain Python.
It passes on whatever it finds, unknown keys and unparsable values included, so that
`build_spec` reports every problem of the stack's config in one go.
"""
from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from infra import certificates
from infra.generated import GENERATED_KEYS
from infra.spec import SCALAR_KEYS, STRUCTURED_KEYS, StackSpec
from infra.spec_errors import PROJECT, SpecError


def read_stack_config() -> dict[str, Any]:
    config = pulumi.Config(PROJECT)
    values: dict[str, Any] = {}
    # A misspelt key would otherwise be ignored silently: the engine hands the program every
    # config value, so pass the `backbone:` ones on and let the spec reject what it does not know.
    for full_key in sorted(_all_config_keys()):
        namespace, _, key = full_key.partition(":")
        # the generated secrets are read where they are used (infra/generated.py), never here
        if namespace == PROJECT and key not in GENERATED_KEYS:
            values[key] = None
    for key in values:
        raw = config.get(key)
        values[key] = _structured(raw) if key in STRUCTURED_KEYS else raw
    return {key: value for key, value in values.items() if value is not None}


def _structured(raw: str | None) -> Any:
    """Objects and lists arrive as JSON text; text that is not JSON stays text, which the
    spec then reports as 'must be an object' / 'must be a list' under its key."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _all_config_keys() -> set[str]:
    # The SDK has no public way to list config keys; if its internals move, read the known
    # keys only rather than fail the deployment.
    keys = {f"{PROJECT}:{key}" for key in (*SCALAR_KEYS, *STRUCTURED_KEYS)}
    try:
        keys.update(runtime_config.CONFIG.get())
        keys.update(runtime_config.get_config_env())
    except (AttributeError, TypeError, ValueError):
        pass
    return keys


def tls_problems(spec: StackSpec) -> None:
    """Refuse (SpecError) certificates that would not serve the stack: missing, signed by
    another CA than `tls_ca_pem`, or not naming a host the platform's clients use (a changed
    namespace). The helper re-issues them: `python -m infra.deploy secrets --stack NAME`."""
    config = pulumi.Config(PROJECT)
    ca = config.get("tls_ca_pem")
    hint = f"run `python -m infra.deploy secrets --stack {spec.stack}` to issue it"
    if not ca:
        raise SpecError([("tls_ca_pem", f"missing: {hint}")])
    problems = []
    for service in certificates.SERVICES:
        key = f"tls_{service}_cert"
        cert = config.get(key)
        found = "missing" if not cert else certificates.problem(
            cert, ca, certificates.service_names(service, spec.platform, spec.namespace))
        if found:
            problems.append((key, f"{found}: {hint}"))
    if problems:
        raise SpecError(problems)
