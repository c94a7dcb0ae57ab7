"""The Pulumi program: stack config -> validated spec -> components -> the outputs contract.

`main` is the whole program. `pulumi up` runs it through `infra/__main__.py`; the Automation
API's inline program (`python -m infra.deploy`, where no Python language host is installed)
runs this same function in its own process.

Everything that can be wrong with the config is found before the first resource is
declared: the spec's own checks, then the contract document validated with a placeholder
password.
"""
from __future__ import annotations

import pulumi

from infra import generated
from infra.outputs import contract_halves, secrets_output
from infra.spec import SpecError, StackSpec, build_spec
from infra.stack_config import read_stack_config, tls_problems


def main() -> None:
    try:
        spec = build_spec(read_stack_config(), stack=pulumi.get_stack())
        if spec.declares_services:
            tls_problems(spec)
        public, secret_shape = contract_halves(
            spec, generated.certificate("tls_ca_pem") if spec.declares_services else None)
    except SpecError as err:
        # RunError: the CLI prints the message alone, without a Python traceback.
        raise pulumi.RunError(f"invalid stack config:\n{err}") from None
    declare(spec)
    pulumi.export("backbone", public)
    pulumi.export("backbone_secrets", secrets_output(secret_shape, generated.secret))


def declare(spec: StackSpec) -> None:
    """Declare the stack's services (their secrets are the stack's config: infra/generated.py)."""
    if not spec.declares_services:
        return  # the bootstrap tier manages nothing: clients use the embedded store
    if spec.platform == "docker":
        from infra import docker
        return docker.declare(spec)
    from infra import kubernetes
    return kubernetes.declare(spec)
