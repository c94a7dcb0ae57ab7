"""The local platform's Redis accounts and how the platform itself reaches its servers and
Sentinels (docs/security.md, Redis).

Secure (the default): every server and Sentinel speaks TLS only, with a certificate from the
environment's CA; the servers load an ACL file with one user per duty and the default user
off; the Sentinels require a password. The accounts:
- `backbone`: the application's (in the contract): the cache namespace only, no dangerous
  or administrative command;
- `replication`: what a replica needs of its master (PSYNC, REPLCONF, PING);
- `sentinel`: what Sentinel needs of the servers (the command set Redis' docs list);
- `backbone-admin`: the platform's own (readiness, faults, drills), kept in state.json and
  never in the contract;
- the Sentinels' password (their default user's, shared for Sentinel-to-Sentinel links),
  given to clients as the contract's `sentinel_username`/`sentinel_password`.
`--insecure` keeps what came before: plaintext, the default user with one password
(`requirepass`), Sentinels open.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import serviceconfig as sc
from ..clients.redis import node_client
from ..contract import CachePolicy
from .pki import secret_for

if TYPE_CHECKING:
    import redis

    from .pki import Authority

APP_USER = "backbone"
REPLICATION_USER = "replication"
SENTINEL_USER = "sentinel"          # Sentinel's account on the servers
ADMIN_USER = "backbone-admin"
SENTINEL_CLIENT_USER = "default"    # the account clients give the Sentinels (requirepass)
# password names in state.json
APP, ADMIN, REPLICATION, SENTINEL, SENTINELS = ("redis", "redis-admin", "redis-replication", "redis-sentinel",
                                                "sentinel")


def private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def app_key_patterns() -> tuple[str, ...]:
    """The application's keys: everything backbone writes lives under the cache policy's
    namespace (the cache's entries, generations, index, stats and locks; the smoke round
    trip's `{ns}:smoke:*`; the live drills' `{ns}:drill:*`)."""
    return (f"{CachePolicy().namespace}:*",)


def accounts(passwords: dict[str, str], sentinel: bool) -> sc.RedisAccounts:
    return sc.RedisAccounts(
        app_user=APP_USER, app_password=passwords[APP], app_key_patterns=app_key_patterns(),
        replication_user=REPLICATION_USER, replication_password=secret_for(passwords, REPLICATION),
        sentinel_user=SENTINEL_USER if sentinel else None,
        sentinel_password=secret_for(passwords, SENTINEL) if sentinel else None,
        admin_user=ADMIN_USER, admin_password=secret_for(passwords, ADMIN))


def tls_files(ca: "Authority", name: str, home: Path) -> sc.RedisTLS:
    """A certificate for one server or Sentinel (also what it shows as a client: replication,
    Sentinel links), in `home/tls`."""
    issued = ca.issue(name, server=True, client=True, directory=home / "tls")
    return sc.RedisTLS(cert_file=str(issued.cert), key_file=str(issued.key), ca_file=str(ca.cert_path))


def server_auth(home: Path, passwords: dict[str, str], ca: "Authority | None", sentinel: bool) -> str:
    """Write a server's credentials (0600) and return the config lines that include them:
    insecure, the one password as before; secure, the ACL file and the replication account."""
    if ca is None:
        private(home / "auth.conf", sc.redis_auth_conf(passwords[APP]))
        return f"include {home / 'auth.conf'}\n"
    private(home / "users.acl", sc.redis_acl_file(accounts(passwords, sentinel)))
    private(home / "auth.conf", sc.redis_replication_auth_conf(REPLICATION_USER, secret_for(passwords, REPLICATION)))
    return f"include {home / 'auth.conf'}\n"


def sentinel_auth(master_name: str, passwords: dict[str, str], secure: bool) -> str:
    if not secure:
        return sc.sentinel_auth_conf(master_name, passwords[APP])
    return sc.sentinel_secure_auth_conf(master_name, SENTINEL_USER, secret_for(passwords, SENTINEL),
                                        secret_for(passwords, SENTINELS))


def _ca_pem(svc: dict[str, Any]) -> str | None:
    return Path(svc["ca"]).read_text() if svc.get("ca") else None


def admin_client(state: dict[str, Any], svc: dict[str, Any], timeout_s: float = 2, **kwargs) -> "redis.Redis":
    """The platform's own client of one Redis server: the admin account over TLS (insecure:
    the one password, plaintext)."""
    if svc.get("ca"):
        return node_client("127.0.0.1", svc["port"], timeout_s, username=ADMIN_USER,
                           password=state["passwords"][ADMIN], ca_pem=_ca_pem(svc), **kwargs)
    return node_client("127.0.0.1", svc["port"], timeout_s, password=state["passwords"][APP], **kwargs)


def sentinel_client(state: dict[str, Any], svc: dict[str, Any], timeout_s: float = 2) -> "redis.Redis":
    """A client of one Sentinel: its password over TLS (insecure: plaintext, no password)."""
    if svc.get("ca"):
        return node_client("127.0.0.1", svc["port"], timeout_s, username=SENTINEL_CLIENT_USER,
                           password=state["passwords"][SENTINELS], ca_pem=_ca_pem(svc))
    return node_client("127.0.0.1", svc["port"], timeout_s)


def contract_auth(state: dict[str, Any], svc: dict[str, Any], sentinel: bool) -> dict[str, Any]:
    """The contract's account fields: the application's user, TLS and the CA (and the
    Sentinels' account); insecure, the one password."""
    if not svc.get("ca"):
        return {"password": state["passwords"][APP]}
    out = {"username": APP_USER, "password": state["passwords"][APP], "tls": True, "ca_pem": _ca_pem(svc)}
    if sentinel:
        out |= {"sentinel_username": SENTINEL_CLIENT_USER, "sentinel_password": state["passwords"][SENTINELS]}
    return out


def operator_account(state_dir: Path) -> tuple[str, str] | None:
    """The administration account of the local environment in `state_dir`, for what only an
    operator may do (the backup drill's BGSAVE and whole-database read); None on an
    --insecure environment (its one password is the contract's) or none there."""
    import json
    try:
        state = json.loads((Path(state_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    password = state.get("passwords", {}).get(ADMIN)
    return (ADMIN_USER, password) if password and not state.get("insecure") else None
