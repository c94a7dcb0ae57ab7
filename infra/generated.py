"""Values generated once and kept in the stack's state: passwords and the KRaft cluster id."""
from __future__ import annotations

import pulumi
import pulumi_random as random


def password(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    # Alphanumeric: the value is embedded in URLs, config files and shell commands without quoting.
    generated = random.RandomPassword(name, length=32, special=False, opts=pulumi.ResourceOptions(parent=parent))
    # Marked secret here rather than trusting the provider to, so every input built from it
    # (container env, uploads, Kubernetes Secrets) is encrypted in the state as well.
    return pulumi.Output.secret(generated.result)


def kraft_cluster_id(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """16 random bytes in URL-safe base64 (22 characters), the form `kafka-storage format`
    expects; kept in state so the storage is never formatted for a different cluster."""
    return random.RandomId(name, byte_length=16, opts=pulumi.ResourceOptions(parent=parent)).b64_url
