"""Who may do what on the local PostgreSQL servers (one server, or the Patroni members).

A secure environment (the default) has:
- the server's superuser `postgres`, for local administration only (creating the roles and
  the database, the extension, readiness and replication checks). Its password stays in
  state.json (0600) and the members' 0600 patroni.yml, never in the contract;
- the accounts by duty of `serviceconfig.TimescaleRoles`, none a superuser: the contract's
  own user (the application: reads and writes), `owner` (owns the database and the schema:
  migrations, the tier switch's triggers), `reader`, `restore` (exactly CREATEDB);
- TLS only (hostssl, TLS 1.2 at least) with scram-sha-256, the server's certificate from the
  environment's CA; the contract says `verify-full` and carries the CA.

An `--insecure` environment keeps the old shape: one superuser `backbone`, who is the
contract's user, plaintext (`sslmode=disable`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import serviceconfig as sc
from ..clients import timescale as timescale_client
from .pki import hand_to, secret_for

if TYPE_CHECKING:
    from .pki import Authority

ROLES = sc.TimescaleRoles()
DATABASE = "backbone"
SECURE_SUPERUSER = "postgres"
INSECURE_SUPERUSER = "backbone"  # --insecure: the contract's user is the superuser, as before
DUTIES = {"owner": ROLES.owner, "reader": ROLES.reader, "restore": ROLES.restore}
# where each role's password is kept in state.json's passwords
PASSWORD_OF = {ROLES.app: "timescale", **{user: f"timescale_{duty}" for duty, user in DUTIES.items()}}


def secure(state: dict[str, Any]) -> bool:
    return not state.get("insecure")


def make_passwords(passwords: dict[str, str], secure_env: bool) -> None:
    """Create every password the environment's PostgreSQL needs (kept in state.json):
    `timescale` is the contract's user's."""
    if secure_env:
        for name in ("timescale_superuser", *(f"timescale_{duty}" for duty in DUTIES)):
            secret_for(passwords, name)


def superuser(state_or_passwords: dict[str, Any], secure_env: bool | None = None) -> tuple[str, str]:
    """The superuser's name and password: from the state, or from the passwords and whether
    the environment is secure."""
    if secure_env is None:
        passwords, secure_env = state_or_passwords["passwords"], secure(state_or_passwords)
    else:
        passwords = state_or_passwords
    if secure_env:
        return SECURE_SUPERUSER, passwords["timescale_superuser"]
    return INSECURE_SUPERUSER, passwords["timescale"]


def server_tls(ca: "Authority", name: str, home: Path, user: str | None) -> sc.TlsFiles:
    """A server (and client: Patroni's members call each other) certificate for `name`, its key
    and a copy of the CA in `home`, given to the account the server runs as (PostgreSQL refuses
    a key anyone else may read)."""
    issued = ca.issue(name, server=True, client=True, directory=home)
    ca_copy = home / "ca.pem"
    shutil.copyfile(ca.cert_path, ca_copy)
    hand_to(user, issued.cert, issued.key, ca_copy)
    return sc.TlsFiles(cert=str(issued.cert), key=str(issued.key), ca=str(ca_copy))


def ca_pem(state: dict[str, Any]) -> str | None:
    """The CA's PEM (None on an --insecure environment), from the copy the servers were given."""
    if not secure(state):
        return None
    path = next((s["ca"] for s in state["services"].values()
                 if s["kind"] in ("timescale", "patroni", "etcd") and s.get("ca")), None)
    return Path(path).read_text() if path else None


def contract(state: dict[str, Any], host: str, port: int) -> dict[str, Any]:
    """The contract's timescale entry for a server at host:port (Patroni adds its members)."""
    passwords = state["passwords"]
    if not secure(state):
        return {"host": host, "port": port, "database": DATABASE, "user": INSECURE_SUPERUSER,
                "password": passwords["timescale"], "sslmode": "disable", "require_timescaledb": True}
    return {"host": host, "port": port, "database": DATABASE, "user": ROLES.app,
            "password": passwords["timescale"], "sslmode": "verify-full", "ca_pem": ca_pem(state),
            "roles": {duty: {"user": user, "password": passwords[f"timescale_{duty}"]}
                      for duty, user in DUTIES.items()},
            "require_timescaledb": True}


def admin(state: dict[str, Any], port: int, dbname: str = "postgres", timeout_s: float = 2, **kwargs: Any):
    """A connection to the server at 127.0.0.1:`port` as its superuser (verified with the CA
    on a secure environment)."""
    user, password = superuser(state)
    return timescale_client.superuser("127.0.0.1", port, user, password, dbname, timeout_s,
                                      ca_pem=ca_pem(state), **kwargs)


def bootstrap(state: dict[str, Any], port: int, timeout_s: float = 5) -> None:
    """Make the server at `port` what the contract says (idempotent, run at every start): the
    database; on a secure environment the roles by duty (with their passwords), the database
    owned by the owner role, the extension (it needs the superuser), and default privileges
    in template1 and the database so the tables the owner creates are the application's to
    read and write and the reader's to read."""
    from psycopg import sql
    with admin(state, port, "postgres", timeout_s, autocommit=True) as conn:
        if secure(state):
            for role, attributes in ROLES.attributes().items():
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                password = state["passwords"][PASSWORD_OF[role]]
                conn.execute(sql.SQL("{} ROLE {} WITH " + attributes + " PASSWORD {}").format(
                    sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(role), sql.Literal(password)))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            owner = sql.SQL(" OWNER {}").format(sql.Identifier(ROLES.owner)) if secure(state) else sql.SQL("")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)) + owner)
    if not secure(state):
        return
    _restore_template(state, port, timeout_s)
    for dbname in ("template1", DATABASE):
        with admin(state, port, dbname, timeout_s, autocommit=True) as conn:
            if dbname == DATABASE:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            for statement in sc.timescale_privileges(ROLES):
                conn.execute(statement)


def _restore_template(state: dict[str, Any], port: int, timeout_s: float) -> None:
    """The template the restore drill clones (serviceconfig.RESTORE_TEMPLATE), made once."""
    from psycopg import sql
    name = sql.Identifier(sc.RESTORE_TEMPLATE)
    with admin(state, port, "postgres", timeout_s, autocommit=True) as conn:
        row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (sc.RESTORE_TEMPLATE,)).fetchone()
        if row is not None and not row[0]:
            return  # made (connections are turned off last)
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 IS_TEMPLATE true").format(name))
    with admin(state, port, sc.RESTORE_TEMPLATE, timeout_s, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for statement in sc.timescale_restore_template(ROLES):
            conn.execute(statement)
    with admin(state, port, "postgres", timeout_s, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
