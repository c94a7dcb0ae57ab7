"""Which addresses each service's `tls` check visits, and the security checks `validate`
runs for a contract (institutional tier: the bootstrap tier has no network service)."""
from __future__ import annotations

from ..checks import Check, CheckResult
from ..contract import Contract, KafkaEndpoint, RedisEndpoint, TimescaleEndpoint
from .tls import check_addresses, plaintext

SERVICES = ("timescale", "redis", "kafka")
PLAINTEXT_SSLMODES = ("disable", "allow", "prefer")  # libpq may (or must) talk plaintext
UNVERIFIED_SSLMODES = ("require", "verify-ca")  # encrypted, but the server's name is not checked


def security_checks(contract: Contract, timeout_s: float) -> dict[str, Check]:
    """tls.<service> then exposure.<service>, for each service the contract has."""
    if contract.tier != "institutional":
        return {}
    from .exposure import exposure_check
    checks: dict[str, Check] = {}
    tls = {"timescale": tls_timescale, "redis": tls_redis, "kafka": tls_kafka}
    for service in SERVICES:
        ep = getattr(contract, service)
        checks[f"tls.{service}"] = (lambda ep=ep, f=tls[service]: f(ep, timeout_s))
    for service in SERVICES:
        ep = getattr(contract, service)
        checks[f"exposure.{service}"] = (lambda ep=ep, s=service: exposure_check(s, ep, timeout_s))
    return checks


def timescale_addresses(ep: TimescaleEndpoint) -> list[tuple[str, int]]:
    """The primary and, in a Patroni cluster, every member libpq may follow."""
    target = ep.target()
    out = [(target["host"], target["port"])]
    if ep.url is None and ep.ha == "patroni":
        out += [(r.host, r.port) for r in ep.replicas]
    return out


def tls_timescale(ep: TimescaleEndpoint, timeout_s: float) -> CheckResult:
    sslmode = ep.target()["sslmode"]
    if sslmode in PLAINTEXT_SSLMODES:
        return plaintext("tls.timescale", "PostgreSQL", f"sslmode {sslmode}")
    note = (f"the contract's sslmode {sslmode} does not have clients check the server's name (verify-full does)"
            if sslmode in UNVERIFIED_SSLMODES else None)
    return check_addresses("tls.timescale", "PostgreSQL", timescale_addresses(ep), ep.ca_pem, timeout_s,
                           postgres=True, note=note)


def redis_addresses(ep: RedisEndpoint, timeout_s: float) -> list[tuple[str, int]]:
    """The master (as the Sentinels name it in sentinel mode) and every Sentinel."""
    if ep.mode != "sentinel":
        target = ep.target()
        return [(target["host"], target["port"])]
    from .redis import sentinel_master
    master = sentinel_master(ep, timeout_s)
    return ([master] if master else []) + [(s.host, s.port) for s in ep.sentinels]


def tls_redis(ep: RedisEndpoint, timeout_s: float) -> CheckResult:
    if not ep.target()["tls"]:
        return plaintext("tls.redis", "Redis" + (" and Sentinel" if ep.mode == "sentinel" else ""), "tls off")
    return check_addresses("tls.redis", "Redis", redis_addresses(ep, timeout_s / 2), ep.ca_pem, timeout_s / 2)


def kafka_addresses(ep: KafkaEndpoint) -> list[tuple[str, int]]:
    out = []
    for item in ep.bootstrap_servers.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def tls_kafka(ep: KafkaEndpoint, timeout_s: float) -> CheckResult:
    if ep.security_protocol not in ("SSL", "SASL_SSL"):
        return plaintext("tls.kafka", "Kafka", ep.security_protocol)
    return check_addresses("tls.kafka", "Kafka", kafka_addresses(ep), ep.ca_pem, timeout_s)
