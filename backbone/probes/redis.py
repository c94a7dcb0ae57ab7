"""Redis probe: AUTH + PING latency, role and replicas; with Sentinel, what each Sentinel
reports for the master and whether quorum holds; memory against maxmemory, evictions,
keyspace hit ratio."""
from __future__ import annotations

import time

import redis

from ..checks import DOWN, CheckResult, judged
from ..clients.redis import classify as redis_failure
from ..clients.redis import node_client, redis_client, sentinel_kwargs
from ..contract import RedisEndpoint

MEMORY_DEGRADED = 0.90  # used_memory above 90 % of maxmemory


def ask_sentinels(ep: RedisEndpoint, timeout_s: float) -> list[dict]:
    """What each declared Sentinel says about the master, asked with the contract's Sentinel
    account over TLS when the contract says so."""
    answers = []
    auth = sentinel_kwargs(ep, timeout_s)
    for s in ep.sentinels:
        client = node_client(s.host, s.port, timeout_s, username=auth.get("username"), password=auth.get("password"),
                             ca_pem=ep.ca_pem, tls=ep.tls)
        try:
            addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ep.master_name)
            try:
                client.execute_command("SENTINEL", "CKQUORUM", ep.master_name)
                quorum = True
            except redis.ResponseError:
                quorum = False
            master = f"{addr[0].decode()}:{addr[1].decode()}" if addr else None
            answers.append({"sentinel": str(s), "master": master, "quorum": quorum})
        except (redis.RedisError, OSError) as exc:
            answers.append({"sentinel": str(s), "master": None, "quorum": False, "error": type(exc).__name__})
        finally:
            client.close()
    return answers


def probe_redis(ep: RedisEndpoint, timeout_s: float) -> CheckResult:
    target = ep.target()
    where = (f"sentinel master {ep.master_name!r}" if ep.mode == "sentinel"
             else f"{target['host']}:{target['port']}")
    started = time.perf_counter()
    client = None
    try:
        sentinels = ask_sentinels(ep, timeout_s) if ep.mode == "sentinel" else []
        client = redis_client(ep, timeout_s)
        client.execute_command("CLIENT", "SETNAME", "backbone-probe")  # connects (and authenticates) first
        t0 = time.perf_counter()
        client.ping()
        ping_ms = (time.perf_counter() - t0) * 1000
        info = client.info()
    except (redis.RedisError, OSError) as exc:
        failure = redis_failure(exc, timeout_s)
        if failure is None:
            raise
        return _down(where, *failure, started, exc)
    finally:
        if client is not None:
            client.close()
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    details = {"mode": ep.mode, "role": info.get("role"), "redis_version": info.get("redis_version"),
               "connected_replicas": info.get("connected_slaves", 0),
               "used_memory": info.get("used_memory"), "maxmemory": info.get("maxmemory", 0),
               "evicted_keys": info.get("evicted_keys", 0),
               "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
               "sentinels": sentinels}
    return judge(ep, where, details, ping_ms)


def judge(ep: RedisEndpoint, where: str, d: dict, latency_ms: float) -> CheckResult:
    problems: list[tuple[str, str]] = []
    if d["role"] != "master":
        problems.append(("not_master", f"the endpoint is a {d['role']}, not the master"))
    if d["maxmemory"] and d["used_memory"] / d["maxmemory"] > MEMORY_DEGRADED:
        problems.append(("memory_high", f"memory at {d['used_memory'] / d['maxmemory']:.0%} of maxmemory"))
    if d["sentinels"]:
        masters = {s["master"] for s in d["sentinels"] if s["master"]}
        silent = [s["sentinel"] for s in d["sentinels"] if s["master"] is None]
        if not all(s["quorum"] for s in d["sentinels"] if s["master"]):
            problems.append(("sentinel_no_quorum", "the Sentinels report no quorum for failover"))
        if len(masters) > 1:
            problems.append(("sentinel_split", f"Sentinels disagree on the master: {', '.join(sorted(masters))}"))
        if silent:
            problems.append(("sentinel_missing", f"Sentinel(s) not answering: {', '.join(silent)}"))
    summary = f"Redis {d['redis_version']} ({d['role']}, {d['connected_replicas']} replica(s)) at {where} answers PING"
    return judged("redis", summary, problems, latency_ms, d)


def _down(where: str, code: str, reason: str, started: float, exc: Exception) -> CheckResult:
    return CheckResult("redis", DOWN, code, f"Redis at {where} is down: {reason}.",
                       latency_ms=(time.perf_counter() - started) * 1000, error=str(exc).strip())
