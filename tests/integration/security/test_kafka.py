"""Kafka's doors, tried for real (docs/security.md, Kafka). Every attempt runs twice: on the
secure environment it must be refused (by the TLS handshake, SASL, or the authorizer), on
the --insecure one the same attempt gets in, so each test can fail."""
import json
import uuid

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from backbone.clients.kafka import kafka_client_config
from backbone.contract import Contract, merge_outputs

T = 8  # seconds per attempt
# what the broker or the handshake says when it shuts a door
REFUSALS = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError._TRANSPORT, KafkaError.SASL_AUTHENTICATION_FAILED,
            KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
            KafkaError.GROUP_AUTHORIZATION_FAILED}


def endpoint(env):
    return Contract.model_validate(merge_outputs(env["contract"])).kafka


def state(env):
    return json.loads((env["state_dir"] / "state.json").read_text())


def conf(env, duty=None, **override):
    return kafka_client_config(endpoint(env), T, duty) | override


def metadata_refused(settings: dict) -> bool:
    """True when the cluster would not even give metadata and said why (a refusal, not a
    timeout); False when it answered with its brokers."""
    seen: list[KafkaError] = []
    admin = AdminClient({**settings, "error_cb": seen.append, "socket.timeout.ms": T * 1000})
    try:
        brokers = admin.list_topics(timeout=T).brokers
    except KafkaException as exc:
        seen.append(exc.args[0])
        assert any(e.code() in REFUSALS for e in seen), f"failed without a refusal: {[e.str() for e in seen]}"
        return True
    assert brokers, "metadata without brokers"
    return False


def refused_by_broker(future) -> bool:
    """True when the broker refused the request for want of authorization; False when it was
    done. Anything else (a timeout, another error) fails the test."""
    try:
        future.result(timeout=T + 5)
        return False
    except KafkaException as exc:
        err = exc.args[0]
        assert err.code() in REFUSALS, err.str()
        return True


def scratch_topic(env) -> str:
    """A topic under the ingest prefix (the relay may write it, not delete it), made by the
    admin principal; the caller deletes it."""
    name = f"ingest.security-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(conf(env, "admin"))
    admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=T)[name].result(timeout=T + 5)
    return name


def drop_topic(env, name: str) -> None:
    admin = AdminClient(conf(env, "admin"))
    try:
        admin.delete_topics([name], operation_timeout=T)[name].result(timeout=T + 5)
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, exc


def test_contract_names_the_secure_setup(single):
    ep = endpoint(single)
    if single["secure"]:
        assert (ep.security_protocol, ep.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
        assert ep.ca_pem and ep.sasl_username and ep.sasl_password
        assert set(ep.principals) == {"admin", "relay", "bridge", "drills"} and ep.acls
        props = (single["state_dir"] / "kafka-1" / "server.properties").read_text()
        assert "allow.everyone.if.no.acl.found=false" in props and "StandardAuthorizer" in props
        assert "listener.name.internal.ssl.client.auth=required" in props
    else:
        assert (ep.security_protocol, ep.ca_pem, ep.principals, ep.acls) == ("PLAINTEXT", None, {}, [])


def test_plaintext_client_refused(single):
    bootstrap = endpoint(single).bootstrap_servers
    assert metadata_refused({"bootstrap.servers": bootstrap, "security.protocol": "PLAINTEXT"}) == single["secure"]


def test_tls_without_sasl_refused(single):
    ep = endpoint(single)
    settings = {"bootstrap.servers": ep.bootstrap_servers, "security.protocol": "PLAINTEXT"}
    if ep.ca_pem:  # the contract's own transport, verified, but no SASL user
        settings |= {"security.protocol": "SSL", "ssl.ca.pem": ep.ca_pem}
    assert metadata_refused(settings) == single["secure"]


def test_wrong_password_refused(single):
    assert metadata_refused(conf(single, "admin", **{"sasl.password": "not-the-password"})) == single["secure"]


def test_anonymous_client_on_the_brokers_listener_refused(single):
    """The brokers' own listener (inter-broker; controllers likewise) with no credentials at
    all: without a client certificate the mTLS handshake fails. On --insecure, brokers talk
    on the PLAINTEXT listener, which lets anyone in."""
    nodes = [s for s in state(single)["services"].values() if s["kind"] == "kafka"]
    ep = endpoint(single)
    if single["secure"]:
        settings = {"bootstrap.servers": ",".join(f"127.0.0.1:{n['internal_port']}" for n in nodes),
                    "security.protocol": "SSL", "ssl.ca.pem": ep.ca_pem}
    else:
        settings = {"bootstrap.servers": ",".join(f"127.0.0.1:{n['port']}" for n in nodes)}
    assert metadata_refused(settings) == single["secure"]


def test_relay_cannot_create_or_delete_topics(single):
    relay = AdminClient(conf(single, "relay"))
    name = f"ingest.security-{uuid.uuid4().hex[:8]}"
    try:
        created = relay.create_topics([NewTopic(name, 1, 1)], operation_timeout=T)[name]
        assert refused_by_broker(created) == single["secure"]
    finally:
        drop_topic(single, name)
    victim = scratch_topic(single)
    try:
        assert refused_by_broker(relay.delete_topics([victim], operation_timeout=T)[victim]) == single["secure"]
    finally:
        drop_topic(single, victim)


def test_principal_without_acls_cannot_produce_to_an_ingest_topic(single):
    """A SCRAM user that exists (made through the admin API) but holds no ACL: authenticated,
    then refused by the authorizer."""
    user, password = f"security-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = AdminClient(conf(single, "admin"))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password.encode())],
                                       request_timeout=T)[user].result(timeout=T + 5)
    try:
        settings = conf(single, **{"sasl.username": user, "sasl.password": password})
        delivered: dict = {}
        producer = Producer({**settings, "acks": "all", "enable.idempotence": False, "message.timeout.ms": T * 1000})
        producer.produce("ingest.metrics", b"not allowed", on_delivery=lambda e, m: delivered.update(error=e))
        producer.flush(T + 5)
        assert "error" in delivered, "no delivery report"
        error = delivered["error"]
        if single["secure"]:
            assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
        else:
            assert error is None, error
    finally:
        admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)],
                                           request_timeout=T)[user].result(timeout=T + 5)


def test_application_user_cannot_alter_acls(single):
    """The contract's own user granting itself everything. On --insecure there is no
    authorizer: the broker answers SECURITY_DISABLED, and nothing guards anything anyway."""
    app = AdminClient(conf(single))
    grant = AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, f"User:{uuid.uuid4().hex[:8]}", "*",
                       AclOperation.ALL, AclPermissionType.ALLOW)
    future = app.create_acls([grant], request_timeout=T)[grant]
    try:
        future.result(timeout=T + 5)
        raise AssertionError("the application's user created an ACL")
    except KafkaException as exc:
        code = exc.args[0].code()
        if single["secure"]:
            assert code == KafkaError.CLUSTER_AUTHORIZATION_FAILED, exc
        else:
            assert code == KafkaError.SECURITY_DISABLED, exc


def test_application_user_cannot_create_topics(single):
    """What `validate`'s exposure check tries as the contract's own user."""
    app = AdminClient(conf(single))
    name = f"security-app-{uuid.uuid4().hex[:8]}"
    try:
        assert refused_by_broker(app.create_topics([NewTopic(name, 1, 1)], operation_timeout=T)[name]) \
            == single["secure"]
    finally:
        drop_topic(single, name)


def test_relay_writes_idempotently_and_bridge_reads_its_ingest_topic(local_env):
    """The duties that must work do: the relay's idempotent producer (WRITE on the topic is
    all Kafka 4.1 asks for it), the bridge's consumer in a group named after its own."""
    from confluent_kafka import Consumer
    name = scratch_topic(local_env)
    try:
        delivered: dict = {}
        producer = Producer({**conf(local_env, "relay"), "acks": "all", "enable.idempotence": True})
        producer.produce(name, b"relayed", on_delivery=lambda e, m: delivered.update(error=e))
        producer.flush(T + 5)
        assert delivered == {"error": None}
        consumer = Consumer({**conf(local_env, "bridge"), "group.id": f"backbone-bridge-sec-{uuid.uuid4().hex[:6]}",
                             "auto.offset.reset": "earliest"})
        try:
            consumer.subscribe([name])
            got = None
            for _ in range(60):
                msg = consumer.poll(0.5)
                if msg is not None:
                    assert msg.error() is None, msg.error()
                    got = msg.value()
                    break
            assert got == b"relayed"
        finally:
            consumer.close()
        # the bridge may read, not write
        refused: dict = {}
        reader = Producer({**conf(local_env, "bridge"), "acks": "all", "enable.idempotence": False,
                           "message.timeout.ms": T * 1000})
        reader.produce(name, b"x", on_delivery=lambda e, m: refused.update(error=e))
        reader.flush(T + 5)
        assert refused["error"] is not None and refused["error"].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        drop_topic(local_env, name)
