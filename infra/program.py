"""What a validated spec declares: nothing for bootstrap, else the platform's components."""
from __future__ import annotations

import pulumi

from infra.spec import StackSpec


def declare(spec: StackSpec) -> dict[str, pulumi.Output[str]]:
    """Declare the stack's services; returns their passwords by contract section."""
    if not spec.declares_services:
        return {}  # the bootstrap tier manages nothing: clients use the embedded store
    if spec.platform == "docker":
        from infra import docker
        return docker.declare(spec)
    from infra import kubernetes
    return kubernetes.declare(spec)
