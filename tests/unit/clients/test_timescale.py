"""clients/timescale: one timeout formula, the contract's URL and pool, and a failure
sentence that never repeats the driver's text (which may carry the URL and its password)."""
import socket
import subprocess
import sys

import psycopg
import pytest

from backbone.clients import timescale as client
from backbone.contract import TimescaleEndpoint

PLANTED = "pl4nted-S3cret"


@pytest.mark.parametrize("timeout_s, expected", [(0.2, 2), (1, 2), (2, 2), (2.1, 3), (10, 10)])
def test_connect_timeout_is_whole_seconds_at_least_two(timeout_s, expected):
    assert client.connect_timeout(timeout_s) == expected


def test_statements_are_bounded_unless_the_caller_asks_for_none():
    assert client.connect_args(2.5)["options"] == "-c statement_timeout=2500"
    args = client.connect_args(2.5, statement_timeout=False, autocommit=True, prepare=False,
                               application_name="backbone-validate")
    assert args == {"connect_timeout": 3, "autocommit": True, "prepare_threshold": None,
                    "application_name": "backbone-validate"}


def test_connect_uses_the_contracts_url_with_its_sslmode(monkeypatch):
    seen = {}
    monkeypatch.setattr(psycopg, "connect", lambda *a, **kw: seen.update(args=a, kwargs=kw))
    ep = TimescaleEndpoint(host="db.example", password=PLANTED, sslmode="verify-full")
    client.connect(ep, 4, autocommit=True)
    assert seen["args"] == (ep.dsn(),) and "sslmode=verify-full" in seen["args"][0]
    assert seen["kwargs"]["connect_timeout"] == 4 and seen["kwargs"]["autocommit"] is True


def test_superuser_names_its_server_and_runs_statements_unbounded(monkeypatch):
    seen = {}
    monkeypatch.setattr(psycopg, "connect", lambda **kw: seen.update(kw))
    client.superuser("127.0.0.1", 5499, "postgres", None, "postgres", 2, autocommit=True)
    assert seen == {"host": "127.0.0.1", "port": 5499, "user": "postgres", "dbname": "postgres",
                    "connect_timeout": 2, "autocommit": True}


def test_the_pooled_engine_takes_the_contracts_pool_settings():
    ep = TimescaleEndpoint(pool={"size": 7, "max_overflow": 3, "timeout_s": 4, "recycle_s": 60, "pre_ping": True})
    engine = client.engine(ep, 2)
    assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (7, 3, 4)
    assert type(client.engine(ep, 2, pooled=False).pool).__name__ == "NullPool"


def test_the_failure_sentence_never_carries_the_password():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    ep = TimescaleEndpoint(host="127.0.0.1", port=port, password=PLANTED, sslmode="disable")
    with pytest.raises(psycopg.Error) as caught:
        client.connect(ep, 1)
    assert client.classify(caught.value)[0] in ("unreachable", "timeout")
    for text in (f"password authentication failed for user backbone ({ep.dsn()})",
                 f"timeout expired: {ep.dsn()}", f"SSL error at {ep.dsn()}", ep.dsn()):
        sentence = client.describe(psycopg.OperationalError(text))
        assert PLANTED not in sentence and sentence, text


def test_importing_the_client_loads_no_driver():
    code = ("import sys, backbone.clients.timescale\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'psycopg', 'sqlalchemy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


CA = ("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")


def test_libpq_url_carries_the_contracts_ca_as_a_file_and_the_duty_account(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ep = TimescaleEndpoint(host="db", port=5433, user="app", password=PLANTED, sslmode="verify-full", ca_pem=CA,
                           roles={"owner": {"user": "own", "password": "o-pw"}})
    url = client.libpq_url(ep, "owner")
    info = psycopg.conninfo.conninfo_to_dict(url)
    assert (info["user"], info["password"], info["sslmode"]) == ("own", "o-pw", "verify-full")
    assert open(info["sslrootcert"]).read() == CA and info["sslrootcert"].startswith(str(tmp_path))
    assert "sslrootcert" not in client.libpq_url(TimescaleEndpoint(password=PLANTED))  # no CA: the URL as it is


def test_a_plaintext_connection_refused_by_pg_hba_is_named_without_the_drivers_text():
    exc = psycopg.OperationalError(f'connection failed: FATAL:  no pg_hba.conf entry for host "127.0.0.1", user '
                                   f'"app", database "{PLANTED}", no encryption')
    code, sentence = client.classify(exc)
    assert code == "refused" and "requires TLS" in sentence and PLANTED not in sentence
