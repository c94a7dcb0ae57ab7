"""The Redis and Sentinel generators' secure settings: TLS only, ACL users by duty with
hashed passwords and the default user off, Sentinels with a password. Pure: every platform
passes its own paths."""
import hashlib

import pytest

from backbone import serviceconfig as sc

TLS = sc.RedisTLS(cert_file="/tls/redis.pem", key_file="/tls/redis.key", ca_file="/tls/ca.pem")
ACCOUNTS = sc.RedisAccounts(app_user="backbone", app_password="app-pw", app_key_patterns=("emp:cache:*",),
                            replication_user="replication", replication_password="repl-pw",
                            sentinel_user="sentinel", sentinel_password="sent-pw",
                            admin_user="backbone-admin", admin_password="admin-pw")


def users(text: str) -> dict[str, list[str]]:
    return {line.split()[1]: line.split()[2:] for line in text.splitlines()}


def test_tls_turns_plaintext_off_and_replicates_over_tls():
    lines = sc.redis_conf(sc.RedisSettings(port=6380, tls=TLS, acl_file="/secrets/users.acl")).splitlines()
    assert "port 0" in lines and "tls-port 6380" in lines and "port 6380" not in lines
    assert {"tls-cert-file /tls/redis.pem", "tls-key-file /tls/redis.key", "tls-ca-cert-file /tls/ca.pem",
            'tls-protocols "TLSv1.2 TLSv1.3"', "tls-replication yes", "tls-auth-clients no",
            "aclfile /secrets/users.acl"} <= set(lines)


def test_without_tls_or_acl_the_conf_is_as_before():
    conf = sc.redis_conf(sc.RedisSettings(port=7000))
    assert "port 7000" in conf.splitlines() and "tls" not in conf and "aclfile" not in conf


def test_sentinel_speaks_tls_only_and_to_tls_masters():
    lines = sc.sentinel_conf(sc.SentinelSettings(port=26380, tls=TLS), "/data").splitlines()
    assert "port 0" in lines and "tls-port 26380" in lines and "tls-replication yes" in lines
    assert not any("pass" in line for line in lines)  # credentials go in through their own file


def test_acl_file_turns_the_default_user_off_and_stores_no_password_in_the_clear():
    text = sc.redis_acl_file(ACCOUNTS)
    for password in ("app-pw", "repl-pw", "sent-pw", "admin-pw"):
        assert password not in text
        assert "#" + hashlib.sha256(password.encode()).hexdigest() in text
    u = users(text)
    assert set(u) == {"default", "backbone", "replication", "sentinel", "backbone-admin"}
    assert u["default"][:2] == ["reset", "off"] and "-@all" in u["default"]
    assert all(rules[:2] == ["reset", "on"] for name, rules in u.items() if name != "default")


def test_the_application_has_its_namespace_and_no_dangerous_command():
    app = users(sc.redis_acl_file(ACCOUNTS))["backbone"]
    assert "~emp:cache:*" in app and "~*" not in app and "resetchannels" in app
    assert app.index("-@dangerous") > app.index("+@all") and app.index("-@admin") > app.index("+@all")
    assert "+info" in app  # the probe's role, memory and hit ratio


def test_replication_and_sentinel_have_exactly_their_commands():
    u = users(sc.redis_acl_file(ACCOUNTS))
    assert u["replication"][3:] == ["resetchannels", "-@all", "+psync", "+replconf", "+ping"]
    assert not any(r.startswith("~") for r in u["replication"] + u["sentinel"])  # no keys
    assert {"+slaveof", "+config|rewrite", "+role", "+info", "+client|kill", "+publish", "+subscribe"} \
        <= set(u["sentinel"])
    assert "+@all" not in u["sentinel"] and "+config" not in u["sentinel"]
    assert u["backbone-admin"][3:] == ["~*", "&*", "+@all"]


def test_accounts_a_deployment_does_not_have_are_left_out():
    single = sc.RedisAccounts(app_user="app", app_password="a", app_key_patterns=("ns:*",),
                              replication_user="repl", replication_password="r")
    assert set(users(sc.redis_acl_file(single))) == {"default", "app", "repl"}


@pytest.mark.parametrize("pattern", ["", "a b", "ns:*\nuser evil on nopass +@all"])
def test_a_key_pattern_cannot_inject_rules(pattern):
    bad = sc.RedisAccounts(app_user="app", app_password="a", app_key_patterns=(pattern,),
                           replication_user="repl", replication_password="r")
    with pytest.raises(ValueError):
        sc.redis_acl_file(bad)


def test_sentinel_credentials_quote_and_share_the_sentinels_password():
    text = sc.sentinel_secure_auth_conf("backbone", "sentinel", 'a"b', "s\\p")
    assert text.splitlines() == ["sentinel auth-user backbone sentinel", 'sentinel auth-pass backbone "a\\"b"',
                                 'requirepass "s\\\\p"', 'sentinel sentinel-pass "s\\\\p"']
    assert sc.redis_replication_auth_conf("replication", "x") == 'masteruser replication\nmasterauth "x"\n'
