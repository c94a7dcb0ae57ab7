"""Redis probe: AUTH + PING latency and role, through Sentinel when the contract says so."""
from __future__ import annotations

import time

import redis
from redis.sentinel import Sentinel

from ..checks import DOWN, OK, CheckResult
from ..contract import RedisEndpoint


def redis_client(ep: RedisEndpoint, timeout_s: float) -> redis.Redis:
    """A client for the current master: via Sentinel in sentinel mode, else direct."""
    if ep.mode == "sentinel":
        sentinel = Sentinel([(s.host, s.port) for s in ep.sentinels], socket_timeout=timeout_s,
                            socket_connect_timeout=timeout_s)
        return sentinel.master_for(ep.master_name, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                   password=ep.password.get_secret_value() if ep.password else None,
                                   username=ep.username, db=ep.db, ssl=ep.tls)
    return redis.Redis.from_url(ep.connection_url(), socket_timeout=timeout_s,
                                socket_connect_timeout=timeout_s, retry_on_timeout=False)


def probe_redis(ep: RedisEndpoint, timeout_s: float) -> CheckResult:
    target = ep.target()
    where = (f"sentinel master {ep.master_name!r}" if ep.mode == "sentinel"
             else f"{target['host']}:{target['port']}")
    started = time.perf_counter()
    client = None
    try:
        client = redis_client(ep, timeout_s)
        t0 = time.perf_counter()
        client.ping()
        ping_ms = (time.perf_counter() - t0) * 1000
        info = client.info("replication")
        server = client.info("server")
    except redis.AuthenticationError as exc:
        return _down(where, "auth_failed", "authentication failed", started, exc)
    except redis.ResponseError as exc:
        code = "auth_failed" if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) else "error"
        return _down(where, code, "the server refused the probe", started, exc)
    except redis.TimeoutError as exc:
        return _down(where, "timeout", f"no answer within {timeout_s:g} s", started, exc)
    except (redis.ConnectionError, OSError) as exc:
        return _down(where, "unreachable", "cannot connect", started, exc)
    finally:
        if client is not None:
            client.close()
    details = {"role": info.get("role"), "connected_replicas": info.get("connected_slaves", 0),
               "redis_version": server.get("redis_version"), "mode": ep.mode}
    return CheckResult("redis", OK, "ok",
                       f"Redis {details['redis_version']} ({details['role']}) answers PING at {where}.",
                       latency_ms=ping_ms, details=details)


def _down(where: str, code: str, reason: str, started: float, exc: Exception) -> CheckResult:
    return CheckResult("redis", DOWN, code, f"Redis at {where} is down: {reason}.",
                       latency_ms=(time.perf_counter() - started) * 1000, error=str(exc).strip())
