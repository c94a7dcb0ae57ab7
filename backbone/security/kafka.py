"""Kafka's exposure attempts: a PLAINTEXT client and an SSL client without SASL (a
MetadataRequest on the wire to each bootstrap server: let in when a broker answers it); the
contract's SASL user with a wrong SCRAM password (let in when librdkafka gets metadata); the
contract's own SASL user creating a topic, `backbone.exposure-probe` (refused with
TOPIC_/CLUSTER_AUTHORIZATION_FAILED). The creation is asked with validate_only, so the
brokers authorize and validate it and create nothing; a topic of that name found afterwards
(a broker that created it anyway) is deleted."""
from __future__ import annotations

import secrets
import socket
import ssl
import struct
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from ..clients import kafka as kafka_client
from ..clients.tls import client_context
from ..contract import KafkaEndpoint
from .exposure import LET_IN, NOT_TRIED, REFUSED, Attempt

PROBE_TOPIC = "backbone.exposure-probe"
_AUTHORIZATION = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)
_HUNG_UP = {KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION}  # every broker refused this client
# MetadataRequest v4 (the oldest Kafka 4 still serves): header api_key 3, version 4, a
# correlation id, client id; body: all topics (a null array), no auto-creation
_CORRELATION = 0x0B0E
_CLIENT_ID = b"backbone-exposure"
_BODY = struct.pack("!hhih", 3, 4, _CORRELATION, len(_CLIENT_ID)) + _CLIENT_ID + struct.pack("!ib", -1, 0)
_METADATA_REQUEST = struct.pack("!i", len(_BODY)) + _BODY
_STEP_S = 0.25  # metadata is asked again this often, so a refusal is seen without waiting out the timeout


def attempts(ep: KafkaEndpoint, timeout_s: float) -> list[Attempt]:
    brokers = [_address(item) for item in ep.bootstrap_servers.split(",")]
    return [
        Attempt("plaintext", "a PLAINTEXT client", lambda: _any_answers(brokers, None, timeout_s)),
        Attempt("ssl_without_sasl", "an SSL client without SASL",
                lambda: _any_answers(brokers, client_context(ep.ca_pem), timeout_s)),
        Attempt("wrong_password", "the contract's SASL user with a wrong password",
                lambda: _metadata(ep, timeout_s, ep.security_protocol, user=ep.sasl_username,
                                  password=secrets.token_urlsafe(24))),
        Attempt("app_admin", f"the contract's own SASL user creating topic {PROBE_TOPIC}",
                lambda: _create_topic(ep, timeout_s), insider=True),
    ]


def _address(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    return host.strip("[]"), int(port)


def _any_answers(brokers: list[tuple[str, int]], tls: ssl.SSLContext | None, timeout_s: float) -> str:
    """Let in when any broker answers a MetadataRequest from a client that never
    authenticated, over TLS when `tls` is given, else plaintext. Asked directly on the wire:
    a SASL listener hangs up on it at once, where librdkafka would keep reconnecting until its
    timeout."""
    deadline = time.monotonic() + timeout_s
    for host, port in brokers:
        if _answers(host, port, tls, deadline):
            return LET_IN
    return REFUSED


def _answers(host: str, port: int, tls: ssl.SSLContext | None, deadline: float) -> bool:
    try:
        sock = socket.create_connection((host, port), timeout=max(0.05, deadline - time.monotonic()))
    except OSError:
        return False
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        sock.sendall(_METADATA_REQUEST)
        answer = b""
        while len(answer) < 8:
            more = sock.recv(8 - len(answer))
            if not more:
                return False  # hung up: refused
            answer += more
        return answer[4:8] == _CORRELATION.to_bytes(4, "big")
    except (OSError, ssl.SSLError):
        return False  # reset, a failed handshake, or no answer in time
    finally:
        sock.close()


def _metadata(ep: KafkaEndpoint, timeout_s: float, protocol: str, *, user: str | None = None,
              password: str | None = None) -> str:
    """Let in when the brokers hand over their metadata; refused when every broker hung up
    or failed the authentication, or nothing answered within `timeout_s`."""
    seen: set[int] = set()
    admin = kafka_client.outsider_admin(ep, timeout_s, protocol=protocol, user=user, password=password,
                                        settings={"error_cb": lambda e: seen.add(e.code())})
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            metadata = admin.list_topics(timeout=min(_STEP_S, left))
            return LET_IN if metadata.brokers else REFUSED
        except KafkaException as exc:
            if _code(exc) == KafkaError._AUTHENTICATION:
                return REFUSED
        admin.poll(0)  # serves error_cb
        if seen & _HUNG_UP:
            return REFUSED
    return REFUSED


def _code(exc: KafkaException) -> int | None:
    return exc.args[0].code() if exc.args and hasattr(exc.args[0], "code") else None


def _create_topic(ep: KafkaEndpoint, timeout_s: float) -> str | tuple[str, str]:
    admin = kafka_client.admin(ep, timeout_s)
    try:
        admin.create_topics([NewTopic(PROBE_TOPIC, 1, 1)], validate_only=True,
                            request_timeout=timeout_s)[PROBE_TOPIC].result(timeout=timeout_s)
        outcome = LET_IN
    except KafkaException as exc:
        code = _code(exc)
        if code in _AUTHORIZATION:
            return REFUSED
        # authorization comes before the name: a topic already there was let in too
        if code != KafkaError.TOPIC_ALREADY_EXISTS:
            return NOT_TRIED, f"the creation was answered with {exc.args[0].name() if exc.args else 'an error'}"
        outcome = LET_IN
    except Exception:  # the future's own timeout  # noqa: BLE001
        return NOT_TRIED, f"no answer within {timeout_s:g} s"
    if outcome == LET_IN:
        _delete_if_there(admin, timeout_s)
    return outcome


def _delete_if_there(admin, timeout_s: float) -> None:
    try:
        if PROBE_TOPIC in admin.list_topics(timeout=timeout_s).topics:
            admin.delete_topics([PROBE_TOPIC], request_timeout=timeout_s)[PROBE_TOPIC].result(timeout=timeout_s)
    except Exception:  # best effort: the verdict is already down  # noqa: BLE001
        pass
