"""PostgreSQL's exposure attempts: sslmode=disable with the right password; the contract's
user with no password; with a random one; the contract's user running CREATE ROLE (in a
transaction rolled back, so nothing is left even if it were let in)."""
from __future__ import annotations

import os
import secrets
import tempfile

from ..clients import timescale as timescale_client
from ..contract import TimescaleEndpoint
from .exposure import LET_IN, NOT_TRIED, REFUSED, Attempt

PROBE_ROLE = "backbone_exposure_probe"


def attempts(ep: TimescaleEndpoint, timeout_s: float) -> list[Attempt]:
    return [
        Attempt("plaintext", "a plaintext connection (sslmode=disable)",
                lambda: _connects(ep, timeout_s, sslmode="disable")),
        Attempt("anonymous", "the contract's user without a password",
                lambda: _connects(ep, timeout_s, password="")),
        Attempt("wrong_password", "the contract's user with a wrong password",
                lambda: _connects(ep, timeout_s, password=secrets.token_urlsafe(24))),
        Attempt("app_admin", "the application's user running CREATE ROLE",
                lambda: _create_role(ep, timeout_s), insider=True),
    ]


def _dsn(ep: TimescaleEndpoint, **override: str) -> str:
    """The contract's conninfo with `override` in place, and no password file to fall back on:
    an empty password is "none" (libpq then ignores PGPASSWORD) and the password file named
    does not exist (libpq skips a missing one silently)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    nowhere = os.path.join(tempfile.gettempdir(), f"backbone-no-passfile-{secrets.token_hex(8)}")
    params = conninfo_to_dict(ep.dsn()) | {"passfile": nowhere} | override
    return make_conninfo(**params)


def _connects(ep: TimescaleEndpoint, timeout_s: float, **override: str) -> str:
    import psycopg
    plain = override.get("sslmode") == "disable"
    try:
        conn = timescale_client.connect_dsn(_dsn(ep, **override), timeout_s, ca_pem=None if plain else ep.ca_pem,
                                            autocommit=True, application_name="backbone-exposure")
    except psycopg.Error:
        return REFUSED
    conn.close()
    return LET_IN


def _create_role(ep: TimescaleEndpoint, timeout_s: float) -> str:
    import psycopg
    try:
        conn = timescale_client.connect(ep, timeout_s, application_name="backbone-exposure")
    except psycopg.Error:
        return NOT_TRIED
    try:
        # CREATE ROLE checks the privilege before the name: a role already there means let in too
        conn.execute(f"CREATE ROLE {PROBE_ROLE} NOLOGIN")
        return LET_IN
    except psycopg.errors.InsufficientPrivilege:
        return REFUSED
    except psycopg.errors.DuplicateObject:
        return LET_IN
    except psycopg.Error:
        return NOT_TRIED
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()
