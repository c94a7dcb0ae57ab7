"""PostgreSQL's exposure attempts: a plaintext connection (sslmode=disable); the contract's
user with no password; with a random one; the contract's user running CREATE ROLE (in a
transaction rolled back, so nothing is left even if it were let in).

The plaintext attempt is a StartupMessage written on the wire, without TLS, to every member:
let in when a server goes on to authenticate it ('R'), refused when it answers with an error
(no `host` line in pg_hba) or hangs up. No password is sent in the clear to find out."""
from __future__ import annotations

import os
import secrets
import socket
import struct
import tempfile
import time

from ..clients import timescale as timescale_client
from ..contract import TimescaleEndpoint
from .exposure import LET_IN, NOT_TRIED, REFUSED, Attempt

PROBE_ROLE = "backbone_exposure_probe"


def attempts(ep: TimescaleEndpoint, timeout_s: float) -> list[Attempt]:
    return [
        Attempt("plaintext", "a plaintext connection (sslmode=disable)",
                lambda: _plaintext(ep, timeout_s)),
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


def _plaintext(ep: TimescaleEndpoint, timeout_s: float) -> str:
    from .plan import timescale_addresses
    target = ep.target()
    deadline = time.monotonic() + timeout_s
    startup = _startup(target["user"], target["database"])
    for host, port in timescale_addresses(ep):
        if _authenticates(host, port, startup, deadline):
            return LET_IN
    return REFUSED


def _startup(user: str, database: str) -> bytes:
    """PostgreSQL's StartupMessage, protocol 3.0."""
    body = struct.pack("!i", 196608) + b"".join(
        k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", database))) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def _authenticates(host: str, port: int, startup: bytes, deadline: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=max(0.05, deadline - time.monotonic())) as sock:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            sock.sendall(startup)
            return sock.recv(1) == b"R"  # an authentication request: plaintext is served
    except OSError:
        return False


def _connects(ep: TimescaleEndpoint, timeout_s: float, **override: str) -> str:
    import psycopg
    try:
        conn = timescale_client.connect_dsn(_dsn(ep, **override), timeout_s, ca_pem=ep.ca_pem,
                                            autocommit=True, application_name="backbone-exposure")
    except psycopg.Error:
        return REFUSED
    conn.close()
    return LET_IN


def _create_role(ep: TimescaleEndpoint, timeout_s: float) -> str | tuple[str, str]:
    import psycopg
    try:
        conn = timescale_client.connect(ep, timeout_s, application_name="backbone-exposure")
    except psycopg.Error as exc:
        return NOT_TRIED, f"the contract's account could not connect: {timescale_client.describe(exc)}"
    try:
        # CREATE ROLE checks the privilege before the name: a role already there means let in too
        conn.execute(f"CREATE ROLE {PROBE_ROLE} NOLOGIN")
        return LET_IN
    except psycopg.errors.InsufficientPrivilege:
        return REFUSED
    except psycopg.errors.DuplicateObject:
        return LET_IN
    except psycopg.Error as exc:
        return NOT_TRIED, f"CREATE ROLE failed otherwise ({type(exc).__name__})"
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()
