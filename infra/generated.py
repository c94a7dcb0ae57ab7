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
    "timescale_password": "TimescaleDB application role `backbone` (reads and writes)",
    "timescale_owner_password": "TimescaleDB owner role `backbone_owner` (schema, migrations)",
    "timescale_reader_password": "TimescaleDB read-only role `backbone_reader`",
    "timescale_restore_password": "TimescaleDB restore role `backbone_restore` (CREATEDB, restore drills)",
    "timescale_superuser_password": "TimescaleDB superuser `postgres` (never in the contract)",
    "timescale_replication_password": "TimescaleDB replication role `standby` (kubernetes: Patroni)",
    "patroni_api_password": "Patroni REST API user `patroni` (kubernetes)",
    "redis_password": "Redis application ACL user `backbone`",
    "redis_replication_password": "Redis ACL user `replication` (replicas' masterauth)",
    "redis_sentinel_password": "Redis ACL user `sentinel` (the Sentinels' account on the servers)",
    "sentinel_password": "the Sentinels' own password (`requirepass`; the contract's redis.sentinel_password)",
    "redis_admin_password": "Redis ACL user `admin` (probes inside the pods; never in the contract)",
    "kafka_admin_password": "Kafka SCRAM principal `admin` (topics and ACLs)",
    "kafka_relay_password": "Kafka SCRAM principal `relay` (writes the ingest topics)",
    "kafka_bridge_password": "Kafka SCRAM principal `bridge` (reads the ingest topics)",
    "kafka_drills_password": "Kafka SCRAM principal `drills` (the drills' topics)",
    "kafka_app_password": "Kafka SCRAM principal `backbone` (the contract's own user)",
    "kafka_cluster_id": "KRaft cluster id (`kafka-storage format`); never change it on a live cluster",
}
# TLS material (infra/certificates.py), issued by the same helper: the CA's and each service's
# certificate are public (plain config), the private keys are config secrets.
CERTIFICATE_KEYS = {"tls_ca_pem": "the stack's CA certificate (in the contract as each service's ca_pem)",
                    **{f"tls_{s}_cert": f"{s}'s certificate" for s in ("timescale", "redis", "kafka")}}
PRIVATE_KEY_KEYS = {"tls_ca_key": "the stack's CA private key (only the helper reads it)",
                    **{f"tls_{s}_key": f"{s}'s private key" for s in ("timescale", "redis", "kafka")}}
# Every key the helper sets: never read as part of the spec (stack_config.py)
GENERATED_KEYS = {**SECRET_KEYS, **CERTIFICATE_KEYS, **PRIVATE_KEY_KEYS}
# Keys held encrypted in the stack's config
ENCRYPTED_KEYS = {**SECRET_KEYS, **PRIVATE_KEY_KEYS}
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
    if key not in ENCRYPTED_KEYS:
        raise KeyError(key)
    return pulumi.Config(PROJECT).require_secret(key)


def certificate(key: str) -> str | None:
    """A public certificate of the stack (plain config); None when the helper has not run."""
    if key not in CERTIFICATE_KEYS:
        raise KeyError(key)
    return pulumi.Config(PROJECT).get(key)


def kafka_passwords() -> dict[str, pulumi.Output[str]]:
    """SCRAM principal -> its password: every duty's and the contract's own user's."""
    from infra import security
    return {user: secret(key) for user, key in [*security.KAFKA_PRINCIPALS.values(), security.KAFKA_APP]}
