"""The stack's namespace, declared once; every other object of the stack lives in it."""
from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes.common import MANAGED_BY


class Namespace(pulumi.ComponentResource):
    name: pulumi.Output[str]

    def __init__(self, name: str, namespace: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:kubernetes:Namespace", name, None, opts)
        # `restricted` Pod Security makes the API server reject any pod of this namespace that
        # would run as root or keep capabilities, whoever creates it.
        security = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": namespace, "labels": {**MANAGED_BY, **security}},
            opts=pulumi.ResourceOptions(parent=self))
        # Objects take the name from the resource's output, so they wait for the namespace.
        self.name = self.namespace.metadata.apply(lambda m: m.name)
        self.register_outputs({"name": self.name})
