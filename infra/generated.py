"""Values generated once per stack and kept in its config as secrets: the passwords and the
KRaft cluster id.

They live in stack config (`pulumi config set --secret`), not in `RandomPassword` /
`RandomId` resources: the config is where an operator rotates a credential, and it needs no
provider plugin (pulumi-random is not available to every installation). `Pulumi.yaml`
declares each key `secret: true` without a default, so the CLI refuses to deploy a stack
that lacks one or holds one in plain text. `python -m infra.deploy secrets --stack NAME`
generates the missing ones (and leaves the others alone).
"""
from __future__ import annotations

import base64
import secrets
import string

import pulumi

from infra.spec_errors import PROJECT

# key -> what it is (the order is the one the helper reports in)
SECRET_KEYS = {
    "timescale_password": "TimescaleDB application role `backbone`",
    "timescale_superuser_password": "TimescaleDB superuser `postgres` (kubernetes: Patroni)",
    "timescale_replication_password": "TimescaleDB replication role `standby` (kubernetes: Patroni)",
    "redis_password": "Redis and Sentinel `requirepass`",
    "kafka_cluster_id": "KRaft cluster id (`kafka-storage format`); never change it on a live cluster",
}
_ALPHANUMERIC = string.ascii_letters + string.digits


def generate(key: str) -> str:
    """A fresh value for `key`. Passwords: 32 alphanumerics, since they are embedded in URLs,
    config files and shell commands without quoting. The cluster id: 16 random bytes in
    URL-safe base64 without padding (22 characters), the form Kafka expects."""
    if key not in SECRET_KEYS:
        raise KeyError(key)
    if key == "kafka_cluster_id":
        return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32))


def secret(key: str) -> pulumi.Output[str]:
    """The stack's value for `key`, as a secret Output (so every input built from it is
    encrypted in the state as well)."""
    if key not in SECRET_KEYS:
        raise KeyError(key)
    return pulumi.Config(PROJECT).require_secret(key)
