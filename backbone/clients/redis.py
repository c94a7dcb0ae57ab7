"""Redis clients: the contract's current master (through Sentinel when the deployment has
one), and, asked for explicitly, one server or Sentinel by address (a Sentinel the probe
questions, the local platform's own servers, a backup drill's scratch server). Every
redis-py client backbone makes is made here."""
from __future__ import annotations

import ssl

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..contract import RedisEndpoint


def tls_args(tls: bool, ca_pem: str | None) -> dict:
    """redis-py's keywords for a TLS connection verified against `ca_pem` (host name
    included), or none for a plaintext one."""
    if not tls:
        return {}
    args: dict = {"ssl": True, "ssl_cert_reqs": "required", "ssl_check_hostname": True,
                  "ssl_min_version": ssl.TLSVersion.TLSv1_2}
    if ca_pem:
        args["ssl_ca_data"] = ca_pem
    return args


def sentinel_kwargs(ep: RedisEndpoint, timeout_s: float) -> dict:
    """How to reach the contract's Sentinels: their account and TLS, bounded by `timeout_s`."""
    kwargs: dict = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                    **tls_args(ep.tls, ep.ca_pem)}
    if ep.sentinel_password is not None:
        kwargs["password"] = ep.sentinel_password.get_secret_value()
        kwargs["username"] = ep.sentinel_username
    return kwargs


def redis_client(ep: RedisEndpoint, timeout_s: float) -> redis.Redis:
    """A client for the current master: via Sentinel in sentinel mode, else direct."""
    if ep.mode == "sentinel":
        sentinel = Sentinel([(s.host, s.port) for s in ep.sentinels], sentinel_kwargs=sentinel_kwargs(ep, timeout_s),
                            socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return sentinel.master_for(ep.master_name, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                   password=ep.password.get_secret_value() if ep.password else None,
                                   username=ep.username, db=ep.db, **tls_args(ep.tls, ep.ca_pem))
    return redis.Redis.from_url(ep.connection_url(), socket_timeout=timeout_s,
                                socket_connect_timeout=timeout_s, retry_on_timeout=False,
                                **_url_tls(ep))


def _url_tls(ep: RedisEndpoint) -> dict:
    """The CA for a rediss:// URL (from_url sets ssl itself)."""
    args = tls_args(ep.target()["tls"], ep.ca_pem)
    args.pop("ssl", None)
    return args


def node_client(host: str, port: int, timeout_s: float, *, password: str | None = None, db: int = 0,
                connect_timeout_s: float | None = None, retry: bool = True, username: str | None = None,
                ca_pem: str | None = None, tls: bool | None = None, unix_socket_path: str | None = None) -> redis.Redis:
    """A client of the one server or Sentinel at host:port rather than the contract's master,
    over TLS verified with `ca_pem` when given (or `tls=True`: the system's CAs), or of a
    server on a Unix socket (a scratch server's). The connect timeout is `timeout_s` unless
    given; `retry=False` turns redis-py's own retries off for a caller that polls by itself."""
    extra = {} if retry else {"retry": Retry(NoBackoff(), 0)}
    if unix_socket_path is not None:
        extra["unix_socket_path"] = unix_socket_path
    else:
        extra |= tls_args(ca_pem is not None if tls is None else tls, ca_pem)
    return redis.Redis(host=host, port=port, username=username, password=password, db=db,
                       socket_timeout=timeout_s,
                       socket_connect_timeout=timeout_s if connect_timeout_s is None else connect_timeout_s, **extra)


def classify(exc: BaseException, timeout_s: float) -> tuple[str, str] | None:
    """A failure's code and the one sentence that explains it, or None for an error that is
    no failure to reach or use the server (a bug to raise). Fixed words only: the driver's
    text is never repeated."""
    if isinstance(exc, redis.AuthenticationError):
        return "auth_failed", "authentication failed"
    if isinstance(exc, redis.ResponseError):
        code = "auth_failed" if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) else "error"
        return code, "the server refused the probe"
    if isinstance(exc, redis.TimeoutError):
        return "timeout", f"no answer within {timeout_s:g} s"
    if isinstance(exc, (redis.ConnectionError, OSError)):
        return "unreachable", "cannot connect"
    return None


def describe(exc: BaseException, timeout_s: float) -> str:
    """The one sentence explaining a failure (an unexpected error: its type's name)."""
    found = classify(exc, timeout_s)
    return found[1] if found else f"unexpected {type(exc).__name__}"
