"""`backbone validate`'s `tls` and `exposure` checks against the real local environments:
on the secure one every service's handshake verifies and every outsider's attempt is
refused (ok); on the --insecure one each service is reached in plaintext (tls degraded) and
the outsider gets in (exposure down, naming at least the plaintext attempt). The same
verdicts in JSON, JUnit and Markdown, and no secret — real or planted, passwords or a
private key — in any of them."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ..conftest import run_backbone

SERVICES = ("timescale", "redis", "kafka")
# per check: a fresh SASL_SSL client's handshakes with three brokers take seconds on a busy
# two-core machine, and an insider's attempt that cannot connect in time is only "not tried"
TIMEOUT_S = "10"
_RUNS: dict[tuple[str, str], tuple[int, str]] = {}


def validate(outputs: Path, fmt: str) -> tuple[int, str]:
    """`backbone validate --format fmt` on an environment's outputs, run once per format."""
    key = (str(outputs), fmt)
    if key not in _RUNS:
        done = run_backbone("validate", "--outputs", str(outputs), "--format", fmt, "--timeout", TIMEOUT_S,
                            timeout=120)
        assert done.returncode in (0, 1), done.stderr
        _RUNS[key] = (done.returncode, done.stdout)
    return _RUNS[key]


def checks_of(env) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(validate(env["outputs"], "json")[1])["checks"]}


@pytest.mark.parametrize("service", SERVICES)
def test_tls_check_per_service(single, service):
    result = checks_of(single)[f"tls.{service}"]
    if single["secure"]:
        assert (result["status"], result["code"]) == ("ok", "ok"), result["message"]
        for row in result["details"]["addresses"]:
            assert row["protocol"] in ("TLSv1.2", "TLSv1.3") and row["days_left"] > 30, row
    else:
        assert (result["status"], result["code"]) == ("degraded", "plaintext"), result["message"]
        assert "for debugging only" in result["message"]


@pytest.mark.parametrize("service", SERVICES)
def test_exposure_check_per_service(single, service):
    result = checks_of(single)[f"exposure.{service}"]
    refused = single["secure"]
    assert (result["status"] == "ok") == refused, result["message"]
    if refused:
        assert result["details"]["let_in"] == [] and result["details"]["not_tried"] == []
        assert "plaintext" in result["details"]["refused"] and "app_admin" in result["details"]["refused"]
    else:
        assert (result["status"], result["code"]) == ("down", "let_in")
        assert "plaintext" in result["details"]["let_in"]


def test_exposure_leaves_nothing_behind(single):
    """The admin attempts create nothing, even where they are let in: no probe role, no
    probe topic."""
    from backbone.clients import kafka as kafka_client
    from backbone.clients import timescale as timescale_client
    from backbone.contract import Sources, load_contract
    checks_of(single)  # validate has run
    contract = load_contract(Sources(outputs=single["outputs"]))
    with timescale_client.connect(contract.timescale, 5, duty="owner") as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'backbone_exposure_probe'").fetchone() == (0,)
    topics = kafka_client.admin(contract.kafka, 5, duty="admin").list_topics(timeout=5).topics
    assert "backbone.exposure-probe" not in topics


@pytest.mark.parametrize("service", SERVICES)
def test_junit_and_markdown_carry_the_same_verdicts(single, service):
    suite = ET.fromstring(validate(single["outputs"], "junit")[1]).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    exposure, tls = cases[f"exposure.{service}"], cases[f"tls.{service}"]
    assert (exposure.find("failure") is None) == single["secure"]
    assert tls.find("failure") is None  # degraded is a failure only with --strict
    assert ("plaintext" in tls.find("system-out").text) != single["secure"]
    markdown = validate(single["outputs"], "markdown")[1]
    row = next(line for line in markdown.splitlines() if line.startswith(f"| exposure.{service} |"))
    assert ("✅ ok" in row) == single["secure"] and ("❌ down" in row) != single["secure"]


def test_the_insecure_environment_fails_validate(single):
    code, _ = validate(single["outputs"], "json")
    if not single["secure"]:
        assert code == 1  # exposure is down


def _secret_leaves(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _secret_leaves(v)]
    return [node] if isinstance(node, str) and node else []


def _plant(node, planted: list[str]):
    if isinstance(node, dict):
        return {k: _plant(v, planted) for k, v in node.items()}
    planted.append(f"planted-{len(planted)}-Zq8vXw3" if planted else planted_key())
    return planted[-1]


def planted_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pieces(secret: str) -> list[str]:
    """A secret, and each line of a PEM block's body (a key split over lines must not leak either)."""
    lines = [line for line in secret.splitlines() if line and not line.startswith("-----")]
    return [secret, *lines]


def test_no_secret_real_or_planted_in_any_format(single, tmp_path):
    document = json.loads(Path(single["outputs"]).read_text())
    real = _secret_leaves(document["backbone_secrets"])
    assert real, "the environment's outputs carry no secrets to look for"
    planted: list[str] = []
    document["backbone_secrets"] = _plant(document["backbone_secrets"], planted)
    assert "PRIVATE KEY" in planted[0]
    wrong = tmp_path / "planted.json"
    wrong.write_text(json.dumps(document))
    for fmt in ("markdown", "json", "junit"):
        for outputs, secrets in ((single["outputs"], real), (wrong, planted)):
            code, text = validate(outputs, fmt)
            assert "exposure.timescale" in text and "tls.kafka" in text
            for secret in secrets:
                for piece in _pieces(secret):
                    assert piece not in text, f"a secret in validate --format {fmt}"
    assert "PRIVATE KEY" not in validate(wrong, "json")[1]


def test_ha_every_patroni_member_and_sentinel_is_checked(ha):
    """With Patroni and Sentinel: the tls check visits every PostgreSQL member, the Redis master
    and every Sentinel; the exposure check tries each Sentinel without auth."""
    checks = checks_of(ha)
    contract = ha["contract"]["backbone"]
    sentinels = [f"{s['host']}:{s['port']}" for s in contract["redis"]["sentinels"]]
    assert sentinels
    exposure = checks["exposure.redis"]
    tried = {code for codes in exposure["details"].values() for code in codes}
    assert {f"sentinel_anonymous:{s}" for s in sentinels} <= tried
    sentinel_refused = [c for c in exposure["details"]["refused"] if c.startswith("sentinel_anonymous:")]
    assert (len(sentinel_refused) == len(sentinels)) == ha["secure"], exposure["message"]
    for service in ("timescale", "redis"):
        exposure = checks[f"exposure.{service}"]
        assert (exposure["status"] == "ok") == ha["secure"], exposure["message"]
        tls = checks[f"tls.{service}"]
        assert (tls["status"] == "ok") == ha["secure"], tls["message"]
    if ha["secure"]:
        members = 1 + len(contract["timescale"]["replicas"])
        assert len(checks["tls.timescale"]["details"]["addresses"]) == members
        redis_rows = {r["address"] for r in checks["tls.redis"]["details"]["addresses"]}
        assert set(sentinels) <= redis_rows and len(redis_rows) == len(sentinels) + 1
