"""Strict validation at the contract boundary: malformed URLs never leak their userinfo,
hosts and names are checked, numbers are numbers, and every refusal names the setting."""
import json
import time
import uuid

import pytest

from backbone.contract import ConfigError, Sources, load_contract
from backbone.local import services


def load(environ=None, extras=(), outputs=None):
    return load_contract(Sources(environ=environ or {}, extras=tuple(extras), outputs=outputs))


def refused(**kwargs) -> str:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load(**kwargs)
    assert time.perf_counter() - started < 1.0
    return str(info.value)


@pytest.mark.parametrize("key, url, secret_pieces", [
    # the two reports: a password with '@', ':' and '/' that was not percent-encoded
    ("REDIS_URL", "redis://:Zq7!p@ss:w/rd@127.0.0.1:6379/0", ["Zq7!p", "Zq7", "p@ss", "ss:w", "w/rd", "rd@"]),
    ("TIMESCALEDB_URL", "postgresql://backbone:Secr3t@host:w/rd99@127.0.0.1:5432/backbone",
     ["Secr3t", "host:w", "rd99", "w/rd"]),
    ("TIMESCALEDB_URL", "postgresql://backbone:p@ss@db.internal:5432/backbone", ["p@ss", "ss@db"]),
    ("TIMESCALEDB_URL", "postgresql://backbone:a?b#c@db:5432/backbone", ["a?b", "b#c"]),
    ("REDIS_URL", "redis://:p%zzword@cache:6379/0", ["p%zz", "zzword"]),
])
def test_a_url_with_an_unencoded_password_is_refused_without_any_piece_of_it(key, url, secret_pieces):
    message = refused(environ={key: url})
    assert key in message and "percent-encode reserved characters" in message
    for piece in secret_pieces:
        assert piece not in message


def test_the_same_passwords_percent_encoded_are_accepted_and_reports_show_only_host_and_port():
    contract = load(environ={"REDIS_URL": "redis://:Zq7%21p%40ss%3Aw%2Frd@127.0.0.1:6379/0",
                             "TIMESCALEDB_URL": "postgresql://backbone:Secr3t%40host%3Aw%2Frd99@127.0.0.1:5432/backbone",
                             "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})
    assert contract.redis.target() == {"host": "127.0.0.1", "port": 6379, "db": 0, "tls": False}
    assert contract.timescale.target()["host"] == "127.0.0.1" and contract.timescale.target()["port"] == 5432
    manifest = json.dumps(contract.manifest())
    for piece in ("Zq7", "p@ss", "Secr3t", "rd99"):
        assert piece not in manifest


@pytest.mark.parametrize("key, value, field", [
    ("TIMESCALEDB_HOST", "x'; DROP TABLE t; --", "timescale.host"),
    ("TIMESCALEDB_HOST", "dätenbank", "timescale.host"),
    ("TIMESCALEDB_HOST", "a" * 5000, "timescale.host"),
    ("REDIS_HOST", "cache host", "redis.host"),
    ("KAFKA_BOOTSTRAP_SERVERS", "bad_host!:9092", "kafka.bootstrap_servers"),
    ("TIMESCALEDB_DATABASE", "x'; DROP DATABASE y; --", "timescale.database"),
    ("TIMESCALEDB_DATABASE", "d" * 64, "timescale.database"),
    ("TIMESCALEDB_USER", "u" * 5000, "timescale.user"),
    ("BACKBONE_ENVIRONMENT", "prod'; --", "environment"),
    ("BACKBONE_ENVIRONMENT", "e" * 5000, "environment"),
    ("TIMESCALEDB_POOL_TIMEOUT", "inf", "timescale.pool.timeout_s"),
    ("TIMESCALEDB_POOL_TIMEOUT", "nan", "timescale.pool.timeout_s"),
    ("BACKBONE_KAFKA_EXPECTED_BROKERS", "1000000000000", "kafka.expected_brokers"),
])
def test_hosts_names_and_numbers_are_checked_and_named(key, value, field):
    message = refused(environ={key: value, "REDIS_HOST": "127.0.0.1", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}
                      if key not in ("REDIS_HOST", "KAFKA_BOOTSTRAP_SERVERS") else {key: value})
    assert message.startswith(field) and key in message
    assert len(message) < 400  # the value is not echoed back


def test_host_forms_that_are_fine():
    for host in ("db", "db.example.com", "10.0.0.7", "::1", "[::1]", "timescale.backbone.svc.cluster.local",
                 "xn--dtenbank-q2a.example"):
        assert load(environ={"TIMESCALEDB_HOST": host}).timescale.host == host


@pytest.mark.parametrize("document, field, problem", [
    ({"timescale": {"port": True}}, "timescale.port", "boolean"),
    ({"redis": {"db": False}}, "redis.db", "boolean"),
    ({"timescale": {"require_timescaledb": 1}}, "timescale.require_timescaledb", "boolean"),
    ({"kafka": {"expected_brokers": 10 ** 12}}, "kafka.expected_brokers", "less than or equal"),
    ({"objectives": {"redis": {"rto_s": float("nan"), "rpo_s": 1}}}, "objectives.redis.rto_s", "greater than 0"),
    ({"objectives": {"redis": {"rto_s": float("inf"), "rpo_s": 1}}}, "objectives.redis.rto_s", "less than"),
])
def test_outputs_documents_are_strict_too(tmp_path, document, field, problem):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"contract_version": 1, "tier": "bootstrap", **document}))
    message = refused(outputs=outputs)
    assert message.startswith(field) and problem in message


def test_a_kraft_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xf8 0x..: URL-safe base64 of these bytes starts with '-'; the storage tool would read it as an option
    dashed, plain = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(int=1)
    assert services.base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    ids = iter([dashed, plain])
    monkeypatch.setattr(services.uuid, "uuid4", lambda: next(ids))
    cluster_id = services.new_cluster_id()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
