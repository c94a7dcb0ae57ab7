"""Redis and Redis Sentinel refuse what an outsider would try, for real: each attempt runs on
the secure environment (the door must be shut) and on the `--insecure` one (the same attempt
gets in), so every test here can fail.

`--insecure` keeps the servers as they were before: plaintext, one password for the default
user (`requirepass`), no ACL, Sentinels open. That old server already refused a client with
no password or a wrong one, so those two attempts are refused on both environments; each of
those tests also lets the right account in through the same door, so it can fail too.
"""
import json
from pathlib import Path

import pytest
import redis

from backbone.clients.redis import node_client, redis_client
from backbone.contract import Contract, merge_outputs
from backbone.local import redis_access, sentinel

TIMEOUT = 3


def contract_of(env) -> Contract:
    return Contract.model_validate(merge_outputs(env["contract"]))


def state_of(env) -> dict:
    return json.loads((env["state_dir"] / "state.json").read_text())


def server(env) -> dict:
    """The Redis server the application writes to: the single one, or the current master."""
    state = state_of(env)
    name = sentinel.primary(state) if state.get("ha") else "redis"
    return state["services"][name]


def app_client(env, **overrides) -> redis.Redis:
    """A client of the master as the contract's application account (TLS as the contract says)."""
    ep = contract_of(env).redis
    kwargs = {"username": ep.username, "password": ep.password.get_secret_value(),
              "ca_pem": ep.ca_pem, "tls": ep.tls} | overrides
    return node_client("127.0.0.1", server(env)["port"], TIMEOUT, retry=False, **kwargs)


def attempt(make, *command) -> tuple[bool, object]:
    """Run one command on a fresh client: (refused, the reply or the error)."""
    client = make()
    try:
        return False, client.execute_command(*command)
    except (redis.RedisError, OSError) as exc:
        return True, exc
    finally:
        client.close()


# --- the servers -------------------------------------------------------------------------

def test_plaintext_to_the_server_is_refused(single):
    """Secure: the only port speaks TLS (port 0 turns plaintext off); a plaintext client with
    the right account gets no answer at all."""
    refused, why = attempt(lambda: app_client(single, ca_pem=None, tls=False), "PING")
    assert refused == single["secure"], why
    if single["secure"]:
        assert isinstance(why, (redis.ConnectionError, redis.TimeoutError, OSError)), why
        assert not attempt(lambda: app_client(single), "PING")[0]  # the same account over TLS gets in


def test_no_credentials_are_refused(single):
    refused, why = attempt(lambda: app_client(single, username=None, password=None), "GET", "emp:cache:x")
    assert refused and isinstance(why, redis.AuthenticationError), why  # NOAUTH
    assert not attempt(lambda: app_client(single), "GET", "emp:cache:x")[0]  # with them, the same door opens


def test_the_default_user_is_off(single):
    """The legacy `AUTH password` logs in as `default`: secure, that user is off whatever the
    password; insecure, it is the one account and the contract's password opens it."""
    password = contract_of(single).redis.password.get_secret_value()
    refused, why = attempt(lambda: app_client(single, username="default", password=password), "PING")
    assert refused == single["secure"], why
    if single["secure"]:
        assert isinstance(why, redis.AuthenticationError), why


def test_a_wrong_password_is_refused(single):
    ep = contract_of(single).redis
    refused, why = attempt(lambda: app_client(single, password="not-" + ep.password.get_secret_value()), "PING")
    assert refused and isinstance(why, redis.AuthenticationError), why
    assert not attempt(lambda: app_client(single), "PING")[0]


# What the application's account must never run, with what it would do. FLUSHALL really runs
# on the insecure environment (nothing there keeps data a test needs).
ADMIN_COMMANDS = {
    "flushall": ("FLUSHALL",),
    "config get": ("CONFIG", "GET", "dir"),
    "acl list": ("ACL", "LIST"),
    "shutdown": ("SHUTDOWN", "ABORT"),  # ABORT: on the insecure server, it runs and stops nothing
    "replicaof": ("REPLICAOF", "NO", "ONE"),
    "bgsave": ("BGSAVE", "SCHEDULE"),
    "client list": ("CLIENT", "LIST"),
    "key outside the namespace": ("SET", "backbone:outside", "x"),
}


@pytest.mark.parametrize("what", ADMIN_COMMANDS)
def test_the_application_account_may_not_administer(single, what):
    refused, why = attempt(lambda: app_client(single), *ADMIN_COMMANDS[what])
    refused_by_acl = isinstance(why, redis.exceptions.NoPermissionError)  # NOPERM
    assert refused_by_acl == single["secure"], why
    if not single["secure"]:  # the insecure server ran it (and maybe said why it did nothing)
        assert not refused or isinstance(why, redis.ResponseError), why


def test_debug_is_refused_by_the_acl_too(single):
    """DEBUG is off on every Redis 7 by default (`enable-debug-command no`), so the attempt
    fails on both environments; that the application's account may not run it even where
    DEBUG is on is the ACL's answer, asked with ACL DRYRUN."""
    refused, why = attempt(lambda: app_client(single), "DEBUG", "SLEEP", "0")
    assert refused, why
    state, ep = state_of(single), contract_of(single).redis
    admin = redis_access.admin_client(state, server(single))
    try:
        verdict = admin.execute_command("ACL", "DRYRUN", ep.username or "default", "DEBUG", "SLEEP", "0")
    finally:
        admin.close()
    verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
    assert (verdict != "OK") == single["secure"], verdict
    assert "no permissions" in verdict or not single["secure"]


def test_the_application_account_does_its_work(single):
    """The namespace's keys, the cache's Lua scripts, INFO for the probe: all allowed."""
    client = redis_client(contract_of(single).redis, TIMEOUT)
    try:
        assert client.set("emp:cache:security:probe", "1", ex=60)
        assert client.eval("return redis.call('GET', KEYS[1])", 1, "emp:cache:security:probe") == b"1"
        assert client.info("memory")["used_memory"] > 0
        assert client.delete("emp:cache:security:probe") == 1
    finally:
        client.close()


def test_every_duty_has_exactly_its_commands(local_env, ha_env):
    """The secure servers' other accounts, as their ACL answers: replication only syncs,
    Sentinel only monitors and fails over, the administration account may do everything."""
    for env in (local_env, ha_env):
        state = state_of(env)
        admin = redis_access.admin_client(state, server(env))
        try:
            def may(user, *command):
                return admin.execute_command("ACL", "DRYRUN", user, *command) in (b"OK", "OK")
            assert may("replication", "PSYNC", "?", "-1") and may("replication", "REPLCONF", "ack", "0")
            assert not may("replication", "GET", "emp:cache:x") and not may("replication", "FLUSHALL")
            assert not may("backbone", "PSYNC", "?", "-1")
            assert may("backbone-admin", "FLUSHALL") and may("backbone-admin", "GET", "anything")
            if state.get("ha"):
                assert may("sentinel", "SLAVEOF", "NO", "ONE") and may("sentinel", "CONFIG", "REWRITE")
                assert not may("sentinel", "GET", "emp:cache:x") and not may("sentinel", "FLUSHALL")
                assert not may("sentinel", "CONFIG", "SET", "dir", "/tmp")
            users = {u.decode() if isinstance(u, bytes) else u for u in admin.execute_command("ACL", "USERS")}
            assert users == {"default", "backbone", "replication", "backbone-admin"} | (
                {"sentinel"} if state.get("ha") else set())
            assert "off" in admin.acl_getuser("default")["flags"]
        finally:
            admin.close()


# --- Sentinel ----------------------------------------------------------------------------

def sentinel_client(env, **overrides) -> redis.Redis:
    """A client of the first Sentinel with the contract's Sentinel account (TLS as the contract
    says), or what `overrides` changes of it."""
    ep = contract_of(env).redis
    kwargs = {"username": ep.sentinel_username,
              "password": ep.sentinel_password.get_secret_value() if ep.sentinel_password else None,
              "ca_pem": ep.ca_pem, "tls": ep.tls} | overrides
    first = ep.sentinels[0]
    return node_client(first.host, first.port, TIMEOUT, retry=False, **kwargs)


def test_plaintext_to_a_sentinel_is_refused(ha):
    refused, why = attempt(lambda: sentinel_client(ha, ca_pem=None, tls=False),
                           "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "backbone")
    assert refused == ha["secure"], why
    if ha["secure"]:
        assert isinstance(why, (redis.ConnectionError, redis.TimeoutError, OSError)), why


def test_a_sentinel_without_auth_is_refused(ha):
    refused, why = attempt(lambda: sentinel_client(ha, username=None, password=None),
                           "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "backbone")
    assert refused == ha["secure"], why
    if ha["secure"]:
        assert isinstance(why, redis.AuthenticationError), why  # NOAUTH
    # with the contract's Sentinel account, the same question is answered
    refused, addr = attempt(lambda: sentinel_client(ha), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "backbone")
    assert not refused and int(addr[1]) == server(ha)["port"], addr
    if ha["secure"]:
        refused, why = attempt(lambda: sentinel_client(ha, password="wrong"), "PING")
        assert refused and isinstance(why, redis.AuthenticationError), why


@pytest.mark.parametrize("command", [("SENTINEL", "FAILOVER", "no-such-master"),
                                     ("SENTINEL", "RESET", "no-such-master-*")], ids=["failover", "reset"])
def test_sentinel_failover_and_reset_without_auth_are_refused(ha, command):
    """Aimed at a name that matches nothing, so that on the insecure Sentinels (where it runs:
    "no such master", or 0 masters reset) it disturbs nothing; a refusal is NOAUTH, before the
    name is even looked at."""
    refused, why = attempt(lambda: sentinel_client(ha, username=None, password=None), *command)
    refused_by_auth = isinstance(why, redis.AuthenticationError)  # NOAUTH
    assert refused_by_auth == ha["secure"], why
    if not ha["secure"]:  # it ran: the name matched nothing
        assert not refused or "No such master" in str(why), why


def test_a_real_failover_without_auth_is_refused(ha_env):
    """The real thing on the secure Sentinels: the master's name, no password: NOAUTH, and the
    master stays where it was."""
    before = server(ha_env)["port"]
    refused, why = attempt(lambda: sentinel_client(ha_env, username=None, password=None),
                           "SENTINEL", "FAILOVER", "backbone")
    assert refused and isinstance(why, redis.AuthenticationError), why  # NOAUTH
    assert server(ha_env)["port"] == before


def test_replication_runs_over_tls_as_the_replication_account(ha_env):
    """The replica is linked (over TLS: the master has no plaintext port) and its connection
    on the master is the `replication` user's; the Sentinels' are the `sentinel` user's."""
    state = state_of(ha_env)
    master = server(ha_env)
    admin = redis_access.admin_client(state, master)
    try:
        clients = admin.client_list()
        info = admin.info("replication")
    finally:
        admin.close()
    assert info["connected_slaves"] == 1
    assert {c["user"] for c in clients if "S" in c["flags"]} == {"replication"}
    assert {c["user"] for c in clients if c.get("name", "").startswith("sentinel-")} == {"sentinel"}
    conf = (Path(master["home"]) / "redis.conf").read_text().splitlines()
    assert "port 0" in conf and "tls-replication yes" in conf
