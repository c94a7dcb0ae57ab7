"""clients/kafka: every Producer, Consumer and AdminClient gets the one configuration made
from the contract (timeouts, security, credentials), the caller's settings on top; a client
made from a raw address carries no credentials."""
import concurrent.futures

import pytest

from backbone.clients import kafka as client
from backbone.contract import KafkaEndpoint

PLANTED = "pl4nted-S3cret"
EP = KafkaEndpoint(bootstrap_servers="k1.example:9093,k2.example:9093", security_protocol="SASL_SSL",
                   sasl_mechanism="SCRAM-SHA-512", sasl_username="backbone", sasl_password=PLANTED)


@pytest.fixture
def made(monkeypatch):
    seen = []
    for name in ("Producer", "Consumer", "AdminClient"):
        monkeypatch.setattr(client, name, lambda conf, name=name: seen.append((name, conf)) or conf)
    return seen


def test_the_contract_configuration_with_the_callers_settings_on_top(made):
    conf = client.producer(EP, 2.5, {"acks": "all", "socket.timeout.ms": 99})
    assert conf["bootstrap.servers"] == EP.bootstrap_servers and conf["security.protocol"] == "SASL_SSL"
    assert (conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"]) == ("SCRAM-SHA-512", "backbone",
                                                                                      PLANTED)
    assert conf["socket.connection.setup.timeout.ms"] == 2500 and conf["socket.timeout.ms"] == 99
    assert conf["acks"] == "all" and conf["logger"] is client.QUIET_LOGGER
    client.consumer(EP, 1, {"group.id": "g"})
    client.admin(EP, 0.001)
    assert [name for name, _ in made] == ["Producer", "Consumer", "AdminClient"]
    assert made[1][1]["group.id"] == "g" and made[1][1]["socket.timeout.ms"] == 1000
    assert made[2][1]["socket.timeout.ms"] == 10 and made[2][1]["socket.connection.setup.timeout.ms"] == 1000


def test_a_client_by_address_carries_no_credentials(made):
    quiet = client.node_admin("127.0.0.1:9092,127.0.0.1:9093")
    assert quiet == {"bootstrap.servers": "127.0.0.1:9092,127.0.0.1:9093", "socket.timeout.ms": 2000,
                     "logger": client.QUIET_LOGGER}
    assert "logger" not in client.node_admin("127.0.0.1:9092", 2, quiet=False)


def test_a_client_by_address_with_access_verifies_the_brokers_and_authenticates(made):
    sasl = client.node_admin("127.0.0.1:9092", access=client.NodeAccess("PEM", username="u", password="p"))
    assert (sasl["security.protocol"], sasl["sasl.mechanism"], sasl["sasl.username"], sasl["sasl.password"]) == \
        ("SASL_SSL", "SCRAM-SHA-512", "u", "p")
    assert sasl["ssl.ca.pem"] == "PEM" and sasl["ssl.endpoint.identification.algorithm"] == "https"
    mtls = client.node_admin("127.0.0.1:9094", access=client.NodeAccess("PEM", cert_file="c.pem", key_file="c.key"))
    assert (mtls["security.protocol"], mtls["ssl.certificate.location"], mtls["ssl.key.location"]) == \
        ("SSL", "c.pem", "c.key") and "sasl.username" not in mtls
    assert "p" not in repr(client.NodeAccess("PEM", username="u", password="p")).replace("NodeAccess", "")


def test_the_error_sentence_is_the_brokers_own_and_a_timeout_is_named():
    assert client.kafka_text(concurrent.futures.TimeoutError()) == "timed out waiting for the broker"
    assert client.kafka_text(RuntimeError("Broker: Unknown topic")) == "Broker: Unknown topic"
