"""Kafka clients made from the contract: one librdkafka configuration for every client
backbone makes, the broker's own error sentence, and topics backbone owns. Every Producer,
Consumer and AdminClient is made here; `node_admin` is the one made from a raw address (the
local platform's brokers, one broker of a drill's cluster) rather than from the contract."""
from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ..contract import KafkaEndpoint

QUIET_LOGGER = logging.getLogger("backbone.librdkafka")
QUIET_LOGGER.addHandler(logging.NullHandler())
QUIET_LOGGER.propagate = False


def kafka_client_config(ep: KafkaEndpoint, timeout_s: float, duty: str | None = None) -> dict:
    """librdkafka settings shared by every client backbone makes, as the principal of `duty`
    (one of KAFKA_DUTIES) when the contract names one, else as its own SASL user."""
    conf = {
        "bootstrap.servers": ep.bootstrap_servers,
        "security.protocol": ep.security_protocol,
        "socket.timeout.ms": max(10, int(timeout_s * 1000)),
        "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
        "reconnect.backoff.max.ms": 500,
        "logger": QUIET_LOGGER,  # librdkafka would otherwise print connection errors to stderr
    }
    if ep.sasl_mechanism:
        conf["sasl.mechanism"] = ep.sasl_mechanism
    user, password = ep.sasl_username, ep.sasl_password
    if duty is not None and duty in ep.principals:
        user, password = ep.principals[duty].user, ep.principals[duty].password
    if user:
        conf["sasl.username"] = user
    if password:
        conf["sasl.password"] = password.get_secret_value()
    if ep.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl.endpoint.identification.algorithm"] = "https"  # the broker's name is checked
        if ep.ca_pem:
            conf["ssl.ca.pem"] = ep.ca_pem
    return conf


def admin(ep: KafkaEndpoint, timeout_s: float, settings: dict | None = None, *,
          duty: str | None = None) -> AdminClient:
    """An admin client of the contract's cluster as `duty`'s principal; `settings` add to or
    override the shared ones."""
    return AdminClient(kafka_client_config(ep, timeout_s, duty) | (settings or {}))


def producer(ep: KafkaEndpoint, timeout_s: float, settings: dict | None = None, *,
             duty: str | None = None) -> Producer:
    """A producer to the contract's cluster as `duty`'s principal; `settings` add to or
    override the shared ones."""
    return Producer(kafka_client_config(ep, timeout_s, duty) | (settings or {}))


def consumer(ep: KafkaEndpoint, timeout_s: float, settings: dict, *, duty: str | None = None) -> Consumer:
    """A consumer of the contract's cluster as `duty`'s principal; `settings` name its group
    at least."""
    return Consumer(kafka_client_config(ep, timeout_s, duty) | settings)


@dataclass(frozen=True)
class NodeAccess:
    """How to reach brokers by address when there is no contract yet (the local platform's
    own state): the CA to verify them with and either a SASL user (SASL_SSL) or a client
    certificate (SSL, the brokers' own mTLS listener)."""

    ca_pem: str
    username: str | None = None
    password: str | None = None
    mechanism: str = "SCRAM-SHA-512"
    cert_file: str | None = None
    key_file: str | None = None

    def config(self) -> dict:
        conf = {"ssl.ca.pem": self.ca_pem, "ssl.endpoint.identification.algorithm": "https"}
        if self.cert_file:
            return conf | {"security.protocol": "SSL", "ssl.certificate.location": self.cert_file,
                           "ssl.key.location": self.key_file}
        return conf | {"security.protocol": "SASL_SSL", "sasl.mechanism": self.mechanism,
                       "sasl.username": self.username, "sasl.password": self.password}

    def __repr__(self) -> str:  # never the password
        return f"NodeAccess(username={self.username!r}, cert_file={self.cert_file!r})"


def node_admin(bootstrap: str, timeout_s: float = 2, *, quiet: bool = True,
               access: NodeAccess | None = None) -> AdminClient:
    """An admin client of brokers by address (host:port,...), without the contract: the local
    platform's own brokers, or one broker a partition drill asks; `access` gives TLS and a
    credential (None: plaintext, an --insecure environment or a drill's scratch cluster).
    `quiet=False` leaves librdkafka's connection errors on stderr."""
    conf: dict = {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
    if access is not None:
        conf |= access.config()
    if quiet:
        conf["logger"] = QUIET_LOGGER
    return AdminClient(conf)


def kafka_text(exc: BaseException) -> str:
    """The broker's or librdkafka's own sentence for an error."""
    if isinstance(exc, concurrent.futures.TimeoutError):
        return "timed out waiting for the broker"
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    return err.str() if hasattr(err, "str") else str(err)


def ensure_topic(admin: AdminClient, topic: NewTopic, timeout_s: float) -> None:
    """Create a topic backbone owns unless it exists; another check or drill creating it at
    the same moment is fine."""
    if topic.topic in admin.list_topics(timeout=timeout_s).topics:
        return
    try:
        admin.create_topics([topic], request_timeout=timeout_s)[topic.topic].result(timeout=timeout_s)
    except KafkaException as exc:
        if not (exc.args and getattr(exc.args[0], "code", lambda: None)() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise


def outsider_admin(ep: KafkaEndpoint, timeout_s: float, *, protocol: str, user: str | None = None,
                   password: str | None = None, settings: dict | None = None) -> AdminClient:
    """An admin client of the contract's brokers as someone the contract does not name (the
    exposure check's outsider): `protocol` as given, the contract's CA and host-name check
    for SSL, and SASL with `user`/`password` (the contract's mechanism) only when given;
    `settings` add to or override these."""
    conf = {k: v for k, v in kafka_client_config(ep, timeout_s).items() if not k.startswith(("sasl.", "ssl."))}
    conf["security.protocol"] = protocol
    if protocol in ("SSL", "SASL_SSL"):
        conf["ssl.endpoint.identification.algorithm"] = "https"
        if ep.ca_pem:
            conf["ssl.ca.pem"] = ep.ca_pem
    if protocol.startswith("SASL_") and user:
        conf |= {"sasl.mechanism": ep.sasl_mechanism or "SCRAM-SHA-512", "sasl.username": user,
                 "sasl.password": password or ""}
    return AdminClient(conf | (settings or {}))
