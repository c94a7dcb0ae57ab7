"""PostgreSQL for the integration tests: the contract's URL with its CA (`url`), and the
server's own superuser from the environment's state.json (`admin`) for what no account of
the contract may do: scratch databases (owned by the schema's owner, so `migrate apply` can
run there), pg_stat_statements, watching other sessions."""
import json

import psycopg
from psycopg import sql

from backbone.clients.timescale import libpq_url
from backbone.local import pgaccess


def url(contract, duty=None) -> str:
    """The contract's libpq URL as `duty`'s account, the CA as sslrootcert."""
    return libpq_url(contract.timescale, duty)


def state_of(env) -> dict:
    return json.loads((env["state_dir"] / "state.json").read_text())


def admin(env, dbname="postgres", port=None) -> psycopg.Connection:
    """An autocommit connection as the server's superuser (the contract's port unless given)."""
    port = port or env["contract"]["backbone"]["timescale"]["port"]
    return pgaccess.admin(state_of(env), port, dbname, 30, autocommit=True)


def create_database(env, name: str) -> None:
    """A scratch database the schema's owner may migrate (owned by it on a secure environment)."""
    state = state_of(env)
    owner = sql.SQL(" OWNER {}").format(sql.Identifier(pgaccess.ROLES.owner)) if pgaccess.secure(state) else sql.SQL("")
    with admin(env) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)) + owner)


def drop_database(env, name: str) -> None:
    with admin(env) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def owner_url(env, database=None, duty="owner") -> str:
    """The URL of `duty`'s account (the schema's owner by default: migrations, DDL planted by a
    test) on `database` (the contract's by default), the CA as sslrootcert."""
    from backbone.contract import Contract, merge_outputs
    ts = Contract.model_validate(merge_outputs(env["contract"])).timescale
    return libpq_url(ts.model_copy(update={"database": database or ts.database}), duty)
