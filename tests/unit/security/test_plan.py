"""Which checks validate gets, what a plaintext contract is told, and how the exposure
attempts' outcomes become a verdict."""
from __future__ import annotations

import threading
import time

import pytest

from backbone.checks import DEGRADED, DOWN, OK
from backbone.contract import Contract
from backbone.security import security_checks
from backbone.security.exposure import LET_IN, NOT_TRIED, REFUSED, Attempt, judge, run_attempts
from backbone.security.plan import tls_kafka, tls_redis, tls_timescale

from .test_tls import ca, serve  # noqa: F401  (fixtures)

NAMES = ["tls.timescale", "tls.redis", "tls.kafka", "exposure.timescale", "exposure.redis", "exposure.kafka"]


def institutional(**sections) -> Contract:
    return Contract.model_validate({"tier": "institutional", "platform": "local", "timescale": {}, "redis": {},
                                    "kafka": {}, **sections})


def test_validate_gets_tls_then_exposure_per_service_on_the_institutional_tier_only():
    assert list(security_checks(institutional(), 1.0)) == NAMES
    assert security_checks(Contract(), 1.0) == {}


def test_validate_plans_the_security_checks_and_names_a_missing_section():
    from backbone.cli.checks import plan_checks
    contract = Contract.model_validate({"tier": "institutional", "platform": "local", "redis": {}, "kafka": {}})
    planned = plan_checks(contract, "validate", 1.0)
    assert all(name in planned for name in NAMES)
    result = planned["tls.timescale"]()
    assert (result.status, result.code) == (DOWN, "not_configured")
    assert not any(name in plan_checks(contract, "probe", 1.0) for name in NAMES)


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer"])
def test_a_postgres_contract_that_may_talk_plaintext_is_degraded_and_says_so(sslmode):
    result = tls_timescale(institutional(timescale={"sslmode": sslmode}).timescale, 1.0)
    assert (result.status, result.code) == (DEGRADED, "plaintext")
    assert f"sslmode {sslmode}" in result.message and "for debugging only" in result.message


def test_redis_without_tls_and_kafka_without_ssl_are_degraded_plaintext():
    for result in (tls_redis(institutional().redis, 1.0),
                   tls_kafka(institutional(kafka={"security_protocol": "SASL_PLAINTEXT"}).kafka, 1.0)):
        assert (result.status, result.code) == (DEGRADED, "plaintext")
        assert "for debugging only" in result.message
    url = institutional(redis={"url": "redis://u:p@127.0.0.1:6379/0", "tls": True}).redis
    assert tls_redis(url, 1.0).code == "plaintext"  # the URL's scheme decides, as for the clients


def test_postgres_verify_full_against_a_real_server_is_ok(ca, serve):  # noqa: F811
    server = serve("postgres", ca.issue("pg-full"))
    ep = institutional(timescale={"port": server.port, "sslmode": "verify-full", "ca_pem": ca.pem}).timescale
    result = tls_timescale(ep, 2.0)
    assert (result.status, result.code) == (OK, "ok"), result.message


@pytest.mark.parametrize("sslmode", ["require", "verify-ca"])
def test_postgres_that_clients_do_not_verify_by_name_is_degraded(ca, serve, sslmode):  # noqa: F811
    server = serve("postgres", ca.issue("pg-unverified"))
    ep = institutional(timescale={"port": server.port, "sslmode": sslmode, "ca_pem": ca.pem}).timescale
    result = tls_timescale(ep, 2.0)
    assert (result.status, result.code) == (DEGRADED, "not_verified_by_clients")
    assert f"sslmode {sslmode}" in result.message


def test_kafka_checks_every_bootstrap_server(ca, serve):  # noqa: F811
    a, b = serve("tls", ca.issue("broker")), serve("plaintext")
    ep = institutional(kafka={"bootstrap_servers": f"127.0.0.1:{a.port},127.0.0.1:{b.port}",
                              "security_protocol": "SASL_SSL", "ca_pem": ca.pem}).kafka
    result = tls_kafka(ep, 2.0)
    assert (result.status, result.code) == (DOWN, "not_tls")
    assert [r["status"] for r in result.details["addresses"]] == [OK, DOWN]


def attempt(code: str, outcome: str, *, insider: bool = False) -> Attempt:
    return Attempt(code, f"the {code} attempt", lambda: outcome, insider=insider)


def test_anything_let_in_is_down_and_named_by_code():
    attempts = [attempt("plaintext", LET_IN), attempt("anonymous", REFUSED), attempt("app_admin", NOT_TRIED)]
    result = judge("exposure.x", "X", attempts, {a.code: a.run() for a in attempts}, 1.0)
    assert (result.status, result.code) == (DOWN, "let_in")
    assert result.details == {"refused": ["anonymous"], "let_in": ["plaintext"], "not_tried": ["app_admin"],
                              "why_not_tried": {"app_admin": "could not connect"}}
    assert "the plaintext attempt got in" in result.message


def test_all_refused_is_ok_and_an_untried_insider_attempt_is_degraded():
    refused = [attempt("plaintext", REFUSED), attempt("anonymous", REFUSED)]
    assert judge("exposure.x", "X", refused, {a.code: REFUSED for a in refused}, 1.0).status == OK
    untried = refused + [attempt("app_admin", NOT_TRIED, insider=True)]
    result = judge("exposure.x", "X", untried, {a.code: a.run() for a in untried}, 1.0,
                   {"app_admin": "the contract's account could not connect: authentication failed"})
    assert (result.status, result.code) == (DEGRADED, "not_tried")
    assert "2 of 3" in result.message and "(the contract's account could not connect: authentication failed)" \
        in result.message
    assert result.details["why_not_tried"] == {"app_admin": "the contract's account could not connect: "
                                                            "authentication failed"}


def test_a_hung_outsider_attempt_counts_as_refused_a_hung_insider_as_not_tried_a_raising_one_not_tried():
    hold = threading.Event()

    def hang() -> str:
        hold.wait(10)
        return LET_IN

    def boom() -> str:
        raise RuntimeError("secret-looking driver text")

    started = time.monotonic()
    why: dict[str, str] = {}
    outcomes = run_attempts([Attempt("outsider", "o", hang), Attempt("insider", "i", hang, insider=True),
                             Attempt("boom", "b", boom), Attempt("said", "s", lambda: (NOT_TRIED, "no master"))],
                            0.3, why)
    hold.set()
    assert outcomes == {"outsider": REFUSED, "insider": NOT_TRIED, "boom": NOT_TRIED, "said": NOT_TRIED}
    assert why == {"insider": "no answer within 0.3 s", "boom": "unexpected RuntimeError", "said": "no master"}
    assert time.monotonic() - started < 1.0
