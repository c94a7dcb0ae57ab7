"""PostgreSQL, Patroni and etcd refuse what an outsider or the application would try, on the
secure environments `local up` starts; on the `--insecure` ones the same attempts get in
(so each test can fail). Single node: `single`; Patroni + etcd: `ha`.

Passwords were required before TLS too (scram-sha-256 on every line, also with --insecure):
the no-password and wrong-password tests are refused on both, and prove they can fail with
the same connection and the right password."""
import json
import ssl
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from backbone.clients.timescale import libpq_url
from backbone.clients.tls import client_context
from backbone.contract import Contract, merge_outputs
from backbone.local import patroni

TIMEOUT = 10


def contract_of(env) -> Contract:
    return Contract.model_validate(merge_outputs(env["contract"]))


def state_of(env) -> dict:
    return json.loads((env["state_dir"] / "state.json").read_text())


def params(env, duty=None, **changes) -> dict:
    """libpq parameters of the contract's account (or `duty`'s), with `changes` (None removes)."""
    out = conninfo_to_dict(libpq_url(contract_of(env).timescale, duty)) | {"connect_timeout": TIMEOUT}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def refused_connection(**conninfo) -> bool:
    try:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
        return False
    except psycopg.OperationalError:
        return True


# --- connections ----------------------------------------------------------------------------

def test_a_plaintext_connection_is_refused(single):
    assert refused_connection(**params(single, sslmode="disable", sslrootcert=None)) == single["secure"]


def test_a_plaintext_connection_to_the_patroni_cluster_is_refused(ha):
    assert refused_connection(**params(ha, sslmode="disable", sslrootcert=None)) == ha["secure"]


@pytest.mark.parametrize("password", [None, "not-the-password"], ids=["no password", "wrong password"])
def test_no_password_or_a_wrong_one_is_refused(single, password, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")  # no password from anywhere else
    assert refused_connection(**params(single, password=password))
    assert not refused_connection(**params(single))  # the same connection with the password gets in


@pytest.mark.parametrize("password", [None, "not-the-password"], ids=["no password", "wrong password"])
def test_no_password_or_a_wrong_one_is_refused_by_the_patroni_members(ha, password, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    assert refused_connection(**params(ha, password=password))
    assert not refused_connection(**params(ha))


# --- what each account may do ------------------------------------------------------------------

def in_transaction(conninfo: dict, statement) -> bool:
    """Whether `statement` is refused for lack of privilege; rolled back whatever happens."""
    with psycopg.connect(**conninfo) as conn:
        try:
            conn.execute(statement)
            return False
        except psycopg.errors.InsufficientPrivilege:
            return True
        finally:
            conn.rollback()


ADMIN_IN_A_TRANSACTION = {
    "CREATE ROLE": lambda: sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier("intruder_" + uuid.uuid4().hex[:6])),
    "DROP TABLE": lambda: sql.SQL("DROP TABLE daily_bars"),
    "TRUNCATE": lambda: sql.SQL("TRUNCATE ingest_runs"),
    "ALTER TABLE": lambda: sql.SQL("ALTER TABLE outbox ADD COLUMN planted text"),
    "CREATE FUNCTION": lambda: sql.SQL("CREATE FUNCTION planted() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
}


@pytest.mark.parametrize("what", sorted(ADMIN_IN_A_TRANSACTION))
def test_the_applications_admin_commands_are_refused(single, what):
    assert in_transaction(params(single), ADMIN_IN_A_TRANSACTION[what]()) == single["secure"]


def test_the_application_may_not_create_a_database(single):
    name = "planted_" + uuid.uuid4().hex[:8]
    with psycopg.connect(**params(single), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            refused = False
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            refused = True
    assert refused == single["secure"]


def test_the_application_may_not_alter_the_system(single):
    with psycopg.connect(**params(single), autocommit=True) as conn:
        try:  # a value equal to the running one, reset at once when let in
            conn.execute("ALTER SYSTEM SET log_min_messages = 'warning'")
            refused = False
            conn.execute("ALTER SYSTEM RESET log_min_messages")
        except psycopg.errors.InsufficientPrivilege:
            refused = True
    assert refused == single["secure"]


def test_the_application_reads_and_writes_its_tables(single):
    """The least privilege still works: the application's DML is let in on both."""
    with psycopg.connect(**params(single)) as conn:
        conn.execute("INSERT INTO tier_state (name, value, updated_at) VALUES ('planted', '{}', now())")
        assert conn.execute("SELECT count(*) FROM tier_state WHERE name = 'planted'").fetchone() == (1,)
        conn.rollback()


def test_the_readers_insert_is_refused(single):
    insert = sql.SQL("INSERT INTO tier_state (name, value, updated_at) VALUES ('planted', '{}', now())")
    assert in_transaction(params(single, duty="reader"), insert) == single["secure"]
    with psycopg.connect(**params(single, duty="reader")) as conn:  # what it is for still works
        conn.execute("SELECT count(*) FROM daily_bars").fetchone()


def test_the_readers_insert_is_refused_on_the_patroni_leader(ha):
    insert = sql.SQL("INSERT INTO tier_state (name, value, updated_at) VALUES ('planted', '{}', now())")
    assert in_transaction(params(ha, duty="reader"), insert) == ha["secure"]


def test_the_restore_account_creates_databases_and_nothing_else(local_env):
    # the secure environment only: an --insecure contract has no restore account (its one
    # user is the superuser)
    single = {**local_env, "secure": True}
    name = "planted_" + uuid.uuid4().hex[:8]
    with psycopg.connect(**params(single, duty="restore"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    assert in_transaction(params(single, duty="restore"), ADMIN_IN_A_TRANSACTION["CREATE ROLE"]())
    assert in_transaction(params(single, duty="restore"), sql.SQL("SELECT count(*) FROM daily_bars"))


def superuser_credentials(env) -> list[str]:
    """The accounts of outputs.json (the contract's user and every duty's) that are superusers."""
    contract = contract_of(env)
    duties = [None, *contract.timescale.roles]
    found = []
    for duty in duties:
        with psycopg.connect(**params(env, duty=duty), autocommit=True) as conn:
            if conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
                found.append(duty or "the contract's user")
    return found


def test_no_credential_in_the_contract_is_a_superuser(single):
    assert (not superuser_credentials(single)) == single["secure"]
    if single["secure"]:  # nor is the superuser's password anywhere in it
        assert state_of(single)["passwords"]["timescale_superuser"] not in single["outputs"].read_text()


def test_no_credential_in_the_contract_is_a_superuser_on_patroni(ha):
    assert (not superuser_credentials(ha)) == ha["secure"]


# --- Patroni's REST API and etcd --------------------------------------------------------------

def http(url: str, method="GET", body=None, headers=None, context=None) -> int:
    """The HTTP status, or 0 when no HTTP answer came (TLS refused, connection reset)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, ssl.SSLError, OSError):
        return 0


def scheme_and_context(env):
    if env["secure"]:
        return "https", client_context(contract_of(env).timescale.ca_pem)
    return "http", None


def test_an_unauthenticated_switchover_is_refused(ha):
    """To a member no one is: Patroni answers 412 once it has let the request in (nothing
    switches over), 401 when it asks for credentials first."""
    state = state_of(ha)
    leader = patroni.primary(state)
    scheme, context = scheme_and_context(ha)
    url = f"{scheme}://127.0.0.1:{state['services'][leader]['api_port']}/switchover"
    body = {"leader": leader, "candidate": "no-such-member"}
    status = http(url, "POST", body, {"Content-Type": "application/json"}, context)
    assert status in (401, 412), status
    assert (status == 401) == ha["secure"]
    if ha["secure"]:  # with the API's credentials the same request gets in (and is refused for its candidate)
        with pytest.raises(urllib.error.HTTPError) as answer:
            patroni.api(state, leader, "/switchover", method="POST", body=body)
        assert answer.value.code == 412
    assert patroni.primary(state) == leader


def test_plaintext_http_to_the_rest_api_is_refused(ha):
    state = state_of(ha)
    port = state["services"]["pg-1"]["api_port"]
    assert (http(f"http://127.0.0.1:{port}/cluster") != 200) == ha["secure"]


def test_etcd_without_a_client_certificate_is_refused(ha):
    etcd = state_of(ha)["services"]["etcd"]
    scheme, context = scheme_and_context(ha)  # the CA verifies etcd; no certificate of our own
    assert (http(f"{scheme}://127.0.0.1:{etcd['port']}/health", context=context) != 200) == ha["secure"]
    assert (http(f"http://127.0.0.1:{etcd['port']}/health") != 200) == ha["secure"]
    assert patroni.etcd_health(state_of(ha))  # with backbone's client certificate it answers
