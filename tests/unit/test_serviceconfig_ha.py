"""The generators behind the HA topologies: Patroni members, etcd, Redis replica + Sentinels."""
import json

import yaml

from backbone import serviceconfig as sc

CREDS = sc.PatroniCredentials("backbone", "app-secret", "replicator", "repl-secret")
MEMBER = sc.PatroniMember(name="pg-2", host="127.0.0.1", pg_port=6432, api_port=8009, data_dir="/tmp/x/data")
DCS = {"etcd3": {"hosts": ["127.0.0.1:2379"]}}


def config(**kwargs):
    settings = sc.PatroniSettings(scope="backbone-local")
    pg = sc.PostgresSettings(port=5432, preload_timescaledb=False)
    return sc.patroni_config(settings, pg, MEMBER, DCS, CREDS, **kwargs)


def test_patroni_member_listens_where_its_member_says_and_names_itself():
    c = config()
    assert c["scope"] == "backbone-local" and c["name"] == "pg-2"
    assert c["restapi"] == {"listen": "127.0.0.1:8009", "connect_address": "127.0.0.1:8009"}
    assert c["postgresql"]["listen"] == "127.0.0.1:6432"
    assert c["postgresql"]["connect_address"] == "127.0.0.1:6432"
    assert c["postgresql"]["data_dir"] == "/tmp/x/data"
    assert c["etcd3"] == {"hosts": ["127.0.0.1:2379"]}


def test_patroni_bootstrap_dcs_is_the_dynamic_config_with_its_failure_detection():
    dcs = config()["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (20, 2, 4)
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["password_encryption"] == "scram-sha-256"
    assert "shared_preload_libraries" not in dcs["postgresql"]["parameters"]
    assert dcs == sc.patroni_dynamic_config(sc.PatroniSettings(scope="backbone-local"),
                                            sc.PostgresSettings(port=5432, preload_timescaledb=False))


def test_patroni_auth_is_scram_everywhere_and_replication_only_for_the_replication_user():
    c = config(hba_network="10.0.0.0/8")
    hba = c["postgresql"]["pg_hba"]
    assert all(line.endswith("scram-sha-256") for line in hba)
    assert "host replication replicator 10.0.0.0/8 scram-sha-256" in hba
    assert not any("trust" in line for line in hba)
    auth = c["postgresql"]["authentication"]
    assert auth["superuser"] == {"username": "backbone", "password": "app-secret"}
    assert auth["replication"] == {"username": "replicator", "password": "repl-secret"}
    assert {"auth": "scram-sha-256"} in c["bootstrap"]["initdb"]


def test_patroni_local_paths_only_when_given():
    bare = config()["postgresql"]
    assert "bin_dir" not in bare and "pgpass" not in bare and bare["parameters"] == {}
    local = config(bin_dir="/usr/lib/postgresql/15/bin", socket_dir="/tmp/x", pgpass="/tmp/x/pgpass")["postgresql"]
    assert local["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert local["pgpass"] == "/tmp/x/pgpass"
    assert local["parameters"] == {"unix_socket_directories": "/tmp/x"}


def test_patroni_config_round_trips_through_yaml_and_json():
    c = config()
    assert yaml.safe_load(json.dumps(c)) == c  # local writes JSON, which Patroni's YAML loader reads
    assert yaml.safe_load(yaml.safe_dump(c)) == c


def test_etcd_single_node_advertises_what_it_listens_on():
    args = sc.etcd_args("etcd-1", "127.0.0.1", 2379, 2380, "/state/etcd")
    assert "--listen-client-urls=http://127.0.0.1:2379" in args
    assert "--advertise-client-urls=http://127.0.0.1:2379" in args
    assert "--initial-cluster=etcd-1=http://127.0.0.1:2380" in args
    assert "--data-dir=/state/etcd" in args
    assert not any("enable-v2" in a for a in args)  # Patroni's etcd3 DCS speaks the v3 API


def test_redis_replica_points_at_its_primary_and_authenticates_to_it():
    conf = sc.redis_conf(sc.RedisSettings(port=7001, replica_of=("127.0.0.1", 7000)))
    assert "replicaof 127.0.0.1 7000" in conf.splitlines()
    assert "requirepass" not in conf
    assert 'masterauth "p"' in sc.redis_auth_conf("p")


def test_sentinel_quorum_and_failure_detection():
    s = sc.SentinelSettings(port=26380, master_name="backbone", master_host="127.0.0.1", master_port=7000,
                            quorum=2, down_after_ms=1000)
    lines = sc.sentinel_conf(s, "/state/sentinel-1").splitlines()
    assert "sentinel monitor backbone 127.0.0.1 7000 2" in lines
    assert "sentinel down-after-milliseconds backbone 1000" in lines
    assert "sentinel failover-timeout backbone 10000" in lines
    assert not any("auth-pass" in line for line in lines)
    assert sc.sentinel_auth_conf("backbone", 'a"b') == 'sentinel auth-pass backbone "a\\"b"\n'


TLS = sc.TlsFiles(cert="/m/pg-2.pem", key="/m/pg-2.key", ca="/m/ca.pem")


def test_secure_patroni_member_is_tls_only_verifies_its_peers_and_guards_its_api():
    c = config(tls=TLS, api_auth=("patroni", "api-secret"))
    hba = c["postgresql"]["pg_hba"]
    # plaintext matches no network line: only hostssl (and the private Unix socket)
    assert [line.split()[0] for line in hba] == ["local", "hostssl", "hostssl"]
    assert "hostssl replication replicator 127.0.0.1/32 scram-sha-256" in hba
    params = c["postgresql"]["parameters"]
    assert params["ssl"] == "on" and params["ssl_min_protocol_version"] == "TLSv1.2"
    assert (params["ssl_cert_file"], params["ssl_key_file"], params["ssl_ca_file"]) == (TLS.cert, TLS.key, TLS.ca)
    for account in c["postgresql"]["authentication"].values():
        assert account["sslmode"] == "verify-full" and account["sslrootcert"] == TLS.ca
    api = c["restapi"]
    assert (api["certfile"], api["keyfile"], api["cafile"]) == (TLS.cert, TLS.key, TLS.ca)
    assert api["authentication"] == {"username": "patroni", "password": "api-secret"}
    assert c["ctl"] == {"insecure": False, "cacert": TLS.ca, "certfile": TLS.cert, "keyfile": TLS.key}


def test_patroni_without_tls_keeps_the_plaintext_shape():
    c = config()
    assert "ctl" not in c and "certfile" not in c["restapi"] and "authentication" not in c["restapi"]
    assert "sslmode" not in c["postgresql"]["authentication"]["superuser"]
    assert all(not line.startswith("hostssl") for line in c["postgresql"]["pg_hba"])


def test_etcd_with_tls_requires_client_certificates_from_clients_and_peers():
    args = sc.etcd_args("etcd-1", "127.0.0.1", 2379, 2380, "/state/etcd", TLS)
    assert "--listen-client-urls=https://127.0.0.1:2379" in args
    assert "--initial-cluster=etcd-1=https://127.0.0.1:2380" in args
    for flag in ("--client-cert-auth", "--peer-client-cert-auth", f"--trusted-ca-file={TLS.ca}",
                 f"--peer-trusted-ca-file={TLS.ca}", f"--cert-file={TLS.cert}", f"--peer-key-file={TLS.key}"):
        assert flag in args
    assert sc.patroni_etcd3(["127.0.0.1:2379"], TLS) == {"etcd3": {
        "hosts": ["127.0.0.1:2379"], "protocol": "https", "cacert": TLS.ca, "cert": TLS.cert, "key": TLS.key}}
    assert sc.patroni_etcd3(["127.0.0.1:2379"]) == DCS


def test_postgresql_roles_by_duty_none_super_and_only_restore_creates_databases():
    roles = sc.TimescaleRoles()
    attrs = roles.attributes()
    assert set(attrs) == {roles.app, roles.owner, roles.reader, roles.restore}
    for role, text in attrs.items():
        assert "NOSUPERUSER" in text and "NOCREATEROLE" in text
        assert ("CREATEDB" in text.replace("NOCREATEDB", "")) == (role == roles.restore)
    grants = sc.timescale_privileges(roles)
    assert any(f'FOR ROLE "{roles.owner}" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{roles.app}"' in g
               for g in grants)
    assert any(f'GRANT SELECT ON TABLES TO "{roles.reader}"' in g for g in grants)
    assert not any(f'TO "{roles.reader}"' in g and ("INSERT" in g or "UPDATE" in g) for g in grants)
