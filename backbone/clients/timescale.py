"""TimescaleDB (PostgreSQL) connections: every psycopg connection and SQLAlchemy engine
backbone makes, with one timeout formula, and the sentence that explains a failure.

psycopg and SQLAlchemy are imported inside the functions: the CLI starts without them and
the bootstrap tier never loads them (tests/unit/cli/test_startup.py)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..contract import TimescaleEndpoint

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Engine


def connect_timeout(timeout_s: float) -> int:
    """libpq's connect_timeout is whole seconds, at least 2 (psycopg raises anything lower to
    2); the caller's own deadline covers the rest."""
    return max(2, math.ceil(timeout_s))


def connect_args(timeout_s: float, *, autocommit: bool = False, statement_timeout: bool = True,
                 prepare: bool = True, application_name: str | None = None) -> dict[str, Any]:
    """psycopg.connect's keyword arguments (beside the conninfo) for a connection bounded by
    `timeout_s`: statements too unless the caller asks for none (a LISTEN session, a pool, a
    migration or a copy whose statements run as long as they need)."""
    args: dict[str, Any] = {"connect_timeout": connect_timeout(timeout_s), "autocommit": autocommit}
    if statement_timeout:
        args["options"] = f"-c statement_timeout={int(timeout_s * 1000)}"
    if not prepare:  # one short-lived session: server-side prepared statements would buy nothing
        args["prepare_threshold"] = None
    if application_name:
        args["application_name"] = application_name
    return args


def connect(ep: TimescaleEndpoint, timeout_s: float, *, duty: str | None = None,
            **kwargs: Any) -> "psycopg.Connection":
    """A connection to the contract's database (its URL: TLS mode and CA, credentials, the
    Patroni leader among the members) as the contract's user, or as the account of `duty`
    (one of TIMESCALE_DUTIES: "owner" for migrations); keyword arguments as `connect_args`."""
    return connect_dsn(ep.dsn(duty), timeout_s, ca_pem=ep.ca_pem, **kwargs)


def libpq_url(ep: TimescaleEndpoint, duty: str | None = None) -> str:
    """The contract's libpq URL as the account of `duty`, with the CA that verifies the server
    as a file (`sslrootcert`) when the contract carries one: for what takes a URL (pg_dump,
    psql, scripts). Holds the password: never print it."""
    url = ep.dsn(duty)
    if not ep.ca_pem:
        return url
    from urllib.parse import quote
    from .tls import ca_file
    return url + ("&" if "?" in url else "?") + "sslrootcert=" + quote(ca_file(ep.ca_pem), safe="/")


def tls_args(ca_pem: str | None) -> dict[str, Any]:
    """libpq's keyword for the CA that verifies the server (a file, written once)."""
    if not ca_pem:
        return {}
    from .tls import ca_file
    return {"sslrootcert": ca_file(ca_pem)}


def connect_dsn(dsn: str, timeout_s: float, *, ca_pem: str | None = None, **kwargs: Any) -> "psycopg.Connection":
    """A connection to a libpq URL the caller was given rather than the contract's (the tier
    switch's target), verified with `ca_pem` when given."""
    import psycopg
    return psycopg.connect(dsn, **tls_args(ca_pem), **connect_args(timeout_s, **kwargs))


def superuser(host: str, port: int, user: str, password: str | None, dbname: str, timeout_s: float,
              *, ca_pem: str | None = None, **kwargs: Any) -> "psycopg.Connection":
    """A connection as a server's own administrator (the local platform creating its
    database or watching replication, a backup drill's scratch server) rather than as the
    contract's role; keyword arguments as `connect_args`, no statement timeout unless asked."""
    import psycopg
    kwargs.setdefault("statement_timeout", False)
    params: dict[str, Any] = {"host": host, "port": port, "user": user, "dbname": dbname}
    if ca_pem:  # a server that speaks TLS is verified like the contract's
        params |= {"sslmode": "verify-full"} | tls_args(ca_pem)
    if password is not None:
        params["password"] = password
    return psycopg.connect(**params, **connect_args(timeout_s, **kwargs))


def engine(ep: TimescaleEndpoint, timeout_s: float, *, pooled: bool = True, duty: str | None = None) -> "Engine":
    """A SQLAlchemy engine on the contract's database: pooled as the contract's `pool` says,
    or one connection per use (migrations, which run once). libpq parses the URL itself:
    SQLAlchemy's parser cannot read a multi-host one (host1:p1,host2:p2, the
    leader-following form Patroni clusters use), so SQLAlchemy only pools."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool
    dsn = ep.dsn(duty)
    creator = lambda: connect_dsn(dsn, timeout_s, ca_pem=ep.ca_pem, statement_timeout=False)  # noqa: E731
    if not pooled:
        return create_engine("postgresql+psycopg://", poolclass=NullPool, creator=creator)
    pool = ep.pool
    return create_engine("postgresql+psycopg://", creator=creator, pool_size=pool.size,
                         max_overflow=pool.max_overflow, pool_timeout=pool.timeout_s,
                         pool_recycle=pool.recycle_s, pool_pre_ping=pool.pre_ping)


def classify(exc: BaseException) -> tuple[str, str]:
    """A failure's code and the one sentence that explains it. Built from fixed words only:
    the driver's text may carry the URL, so none of it is repeated."""
    text = str(exc).lower()
    if "password authentication failed" in text or "authentication failed" in text:
        return "auth_failed", "authentication failed"
    if "no pg_hba.conf entry" in text:  # e.g. plaintext to a server that admits TLS only
        return "refused", "the server's access rules refuse this connection" + (
            " (it requires TLS)" if "no encryption" in text else "")
    if "timeout expired" in text or "timed out" in text:
        return "timeout", "no answer in time"
    if "connection refused" in text:
        return "unreachable", "connection refused"
    if "does not exist" in text:
        return "not_found", "database or role does not exist"
    if "ssl" in text:
        return "tls_failed", "TLS negotiation failed"
    return "unreachable", "cannot connect"


def describe(exc: BaseException) -> str:
    """The one sentence explaining a failure to connect or to answer."""
    return classify(exc)[1]
