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
