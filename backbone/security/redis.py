"""Redis's exposure attempts: PING in plaintext to the server's port (let in when the server
answers at all, even NOAUTH: it speaks plaintext, so a client's AUTH would cross in the
clear; no password is sent to find out); PING with no AUTH over the contract's TLS (NOAUTH
expected); a wrong password; the application's user running `CONFIG GET maxmemory` (NOPERM
expected); and, in sentinel mode, PING to each Sentinel with no auth."""
from __future__ import annotations

import secrets
from urllib.parse import unquote, urlsplit

import redis

from ..clients.redis import describe, node_client, redis_client
from ..contract import RedisEndpoint
from .exposure import LET_IN, NOT_TRIED, REFUSED, Attempt

_REFUSALS = (redis.RedisError, OSError)  # NOAUTH, WRONGPASS, NOPERM, a closed or silent TLS port


def sentinel_master(ep: RedisEndpoint, timeout_s: float) -> tuple[str, int] | None:
    """The master's address as the first Sentinel that answers (with its account) names it."""
    for s in ep.sentinels:
        client = node_client(s.host, s.port, timeout_s, username=ep.sentinel_username,
                             password=ep.sentinel_password.get_secret_value() if ep.sentinel_password else None,
                             ca_pem=_ca(ep), retry=False)
        try:
            addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ep.master_name)
            if addr:
                return addr[0].decode(), int(addr[1])
        except _REFUSALS:
            continue
        finally:
            client.close()
    return None


def _ca(ep: RedisEndpoint) -> str | None:
    return ep.ca_pem if ep.target()["tls"] else None


def _user(ep: RedisEndpoint) -> str | None:
    """The contract's user, from the URL when it gives one."""
    if ep.url is not None:
        parts = urlsplit(ep.url.get_secret_value())
        return unquote(parts.username) if parts.username else None
    return ep.username


def attempts(ep: RedisEndpoint, timeout_s: float) -> list[Attempt]:
    user = _user(ep)
    found: list[Attempt] = [
        Attempt("plaintext", "a plaintext connection",
                lambda: _ping(ep, timeout_s, None, None, tls=False, any_answer=True)),
        Attempt("anonymous", "PING without AUTH", lambda: _ping(ep, timeout_s, None, None, tls=True)),
        Attempt("wrong_password", "the contract's user with a wrong password",
                lambda: _ping(ep, timeout_s, user, secrets.token_urlsafe(24), tls=True)),
        Attempt("app_admin", "the application's user running CONFIG GET maxmemory",
                lambda: _config_get(ep, timeout_s), insider=True),
    ]
    for s in ep.sentinels if ep.mode == "sentinel" else []:
        found.append(Attempt(f"sentinel_anonymous:{s}", f"PING to Sentinel {s} without auth",
                             lambda s=s: _ping_at(s.host, s.port, timeout_s, None, None, _ca(ep))))
    return found


def _ping(ep: RedisEndpoint, timeout_s: float, user: str | None, password: str | None, *, tls: bool,
          any_answer: bool = False) -> str | tuple[str, str]:
    if ep.mode == "sentinel":
        where = sentinel_master(ep, timeout_s / 2)
        if where is None:
            return NOT_TRIED, "no Sentinel named the master"
        host, port = where
    else:
        target = ep.target()
        host, port = target["host"], target["port"]
    return _ping_at(host, port, timeout_s, user, password, _ca(ep) if tls else None, any_answer=any_answer)


def _ping_at(host: str, port: int, timeout_s: float, user: str | None, password: str | None,
             ca_pem: str | None, *, any_answer: bool = False) -> str:
    """PONG is let in; with `any_answer`, so is any reply of the server's (NOAUTH included)."""
    client = node_client(host, port, timeout_s, username=user if password else None, password=password,
                         ca_pem=ca_pem, retry=False)
    try:
        return LET_IN if client.ping() else REFUSED
    except (redis.AuthenticationError, redis.ResponseError):
        return LET_IN if any_answer else REFUSED
    except _REFUSALS:
        return REFUSED
    finally:
        client.close()


def _config_get(ep: RedisEndpoint, timeout_s: float) -> str | tuple[str, str]:
    client = redis_client(ep, timeout_s)
    try:
        try:
            client.ping()
        except _REFUSALS as exc:
            return NOT_TRIED, f"the contract's account could not connect: {describe(exc, timeout_s)}"
        try:
            client.execute_command("CONFIG", "GET", "maxmemory")
            return LET_IN
        except redis.ResponseError as exc:  # NOPERM (redis-py may name it NoPermissionError)
            if "NOPERM" in str(exc) or isinstance(exc, redis.exceptions.NoPermissionError):
                return REFUSED
            return NOT_TRIED, "CONFIG GET failed otherwise"
        except _REFUSALS as exc:
            return NOT_TRIED, f"CONFIG GET got no answer: {describe(exc, timeout_s)}"
    finally:
        client.close()
