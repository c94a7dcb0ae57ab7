"""The generated service configuration every deploy path uses."""
from backbone import serviceconfig as sc


def nodes(n):
    return [sc.KafkaNode(i, f"kafka-{i}.kafka", 9092, 9093) for i in range(1, n + 1)]


def test_kafka_single_node_is_a_combined_kraft_node():
    props = sc.kafka_server_properties(nodes(1)[0], nodes(1), "/data")
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@kafka-1.kafka:9093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["auto.create.topics.enable"] == "false"


def test_kafka_three_nodes_replicate_internal_topics_and_bind_apart_from_advertising():
    cluster = sc.KafkaClusterSettings(default_replication_factor=3, min_insync_replicas=2,
                                      broker_session_timeout_ms=6000)
    props = sc.kafka_server_properties(nodes(3)[1], nodes(3), "/data", cluster, bind_host="0.0.0.0")
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"].count("@") == 3
    assert props["listeners"].startswith("PLAINTEXT://0.0.0.0:9092")
    assert props["advertised.listeners"] == "PLAINTEXT://kafka-2.kafka:9092"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["broker.session.timeout.ms"] == "6000"


def test_replication_never_exceeds_the_node_count():
    cluster = sc.KafkaClusterSettings(default_replication_factor=3, min_insync_replicas=2)
    props = sc.kafka_server_properties(nodes(1)[0], nodes(1), "/d", cluster)
    assert props["default.replication.factor"] == "1" and props["min.insync.replicas"] == "1"


def test_kafka_container_env_follows_the_official_image_convention():
    env = sc.kafka_container_env({"node.id": "1", "log.dirs": "/x", "some_key-dash": "v"})
    assert env == {"KAFKA_NODE_ID": "1", "KAFKA_LOG_DIRS": "/x", "KAFKA_SOME__KEY___DASH": "v"}


def test_properties_render_one_per_line():
    assert sc.render_properties({"a.b": "1", "c": "x"}) == "a.b=1\nc=x\n"


def test_redis_conf_has_no_credentials_and_auth_conf_quotes_them():
    conf = sc.redis_conf(sc.RedisSettings(port=7000, replica_of=("primary", 6379)))
    assert "port 7000" in conf and "replicaof primary 6379" in conf
    assert "requirepass" not in conf and "masterauth" not in conf
    auth = sc.redis_auth_conf('p"w\\d')
    assert auth == 'requirepass "p\\"w\\\\d"\nmasterauth "p\\"w\\\\d"\n'


def test_sentinel_conf_declares_failure_detection():
    conf = sc.sentinel_conf(sc.SentinelSettings(master_host="redis-0", quorum=2, down_after_ms=1000,
                                                failover_timeout_ms=5000), "/data")
    assert "sentinel monitor backbone redis-0 6379 2" in conf
    assert "sentinel down-after-milliseconds backbone 1000" in conf
    assert "sentinel failover-timeout backbone 5000" in conf
    assert "auth-pass" not in conf


def test_postgresql_conf_quotes_every_value():
    params = sc.postgresql_settings(sc.PostgresSettings(port=5433, listen_addresses="127.0.0.1",
                                                        preload_timescaledb=False))
    assert "shared_preload_libraries" not in params
    text = sc.render_postgresql_conf(params | {"x": "it's"})
    assert "listen_addresses = '127.0.0.1'\n" in text
    assert "x = 'it''s'\n" in text


def test_timescale_preload_and_patroni_dynamic_config():
    pg = sc.PostgresSettings()
    params = sc.postgresql_settings(pg)
    assert params["shared_preload_libraries"].split(",")[0] == "timescaledb"
    # every TimescaleDB job and parallel worker gets a slot, plus the launchers
    assert int(params["max_worker_processes"]) >= (int(params["timescaledb.max_background_workers"])
                                                   + int(params["max_parallel_workers"]) + 2)
    dcs = sc.patroni_dynamic_config(sc.PatroniSettings(ttl=20, loop_wait=2, retry_timeout=4), pg)
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["synchronous_mode"]) == (20, 2, 4, True)
    assert dcs["postgresql"]["parameters"]["wal_level"] == "replica"


def test_kafka_security_secures_every_listener_and_needs_an_internal_port():
    import pytest
    secure_nodes = [sc.KafkaNode(i, "127.0.0.1", 9000 + i, 9100 + i, 9200 + i) for i in (1, 2)]
    security = sc.KafkaSecurity(keystore="/tls/keystore.pem", truststore="/tls/ca.pem",
                                super_users=("kafka-broker-1", "kafka-broker-2"))
    props = sc.kafka_server_properties(secure_nodes[0], secure_nodes, "/d", security=security)
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"
    assert props["listeners"] == "CLIENT://127.0.0.1:9001,INTERNAL://127.0.0.1:9201,CONTROLLER://127.0.0.1:9101"
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:9001,INTERNAL://127.0.0.1:9201"
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule required" in props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert props["listener.name.internal.ssl.client.auth"] == "required"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert (props["ssl.keystore.type"], props["ssl.truststore.type"]) == ("PEM", "PEM")
    assert "TLSv1.1" not in props["ssl.enabled.protocols"] and "TLSv1.2" in props["ssl.enabled.protocols"]
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:kafka-broker-1;User:kafka-broker-2"
    assert props["ssl.principal.mapping.rules"].startswith("RULE:^CN=([^,]+)$/$1/")
    with pytest.raises(ValueError, match="internal_port"):
        sc.kafka_server_properties(nodes(1)[0], nodes(1), "/d", security=security)


def test_kafka_without_security_is_exactly_plaintext():
    props = sc.kafka_server_properties(nodes(1)[0], nodes(1), "/d")
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert not any(k.startswith(("ssl.", "sasl.", "authorizer", "super.", "listener.name.")) for k in props)
