"""Both stacks carry issue 23's security, as declared to the mocked engine: TLS on every
listener with certificates naming what clients reach, no plaintext listener, secrets as
files (never in a container's environment), accounts by duty, the authorizer, Redis' ACL
users with `default` off, Sentinel's NetworkPolicy, and outputs that carry the CA and never
the superuser."""
from __future__ import annotations

import json

import pytest
from cryptography import x509

from backbone.contract import Contract, merge_outputs
from infra import certificates, security
from stack_harness import MOCK_SECRETS, is_secret, mock_tls, plain, run_stack, stack_file_config

pytestmark = pytest.mark.timeout(120)

NS = "backbone-staging"
CONTAINER = "docker:index/container:Container"


def k8s(run, kind: str, name: str) -> dict:
    return plain(run.k8s(kind, name).inputs)


def pod_spec(run, name: str) -> dict:
    return k8s(run, "StatefulSet", name)["spec"]["template"]["spec"]


def docker_containers(run) -> dict[str, dict]:
    return {d.name.removesuffix("-container"): plain(d.inputs) for d in run.of_type(CONTAINER)}


def docker_uploads(run, name: str) -> dict[str, dict]:
    return {u["file"]: u for u in docker_containers(run)[name]["uploads"]}


def secret_values(stack: str) -> list[str]:
    """Every password and private key the run was given."""
    config = stack_file_config(stack)
    tls = mock_tls(config["platform"], config["namespace"])
    return [*MOCK_SECRETS.values(), *(v for k, v in tls.items() if k.endswith("_key"))]


def contract(run) -> Contract:
    return Contract.model_validate(merge_outputs(json.loads(json.dumps(run.outputs))))


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


# --- secrets as files, never in an environment -----------------------------------------------

def test_no_container_environment_holds_a_secret_on_either_platform(dev_run, staging_run):
    environments = [json.dumps(c.get("envs", [])) for c in docker_containers(dev_run).values()]
    for name in ("timescale", "redis", "redis-sentinel", "kafka"):
        for container in pod_spec(staging_run, name)["containers"]:
            assert "envFrom" not in container, name
            for entry in container["env"]:
                assert "secretKeyRef" not in json.dumps(entry.get("valueFrom", {})), (name, entry["name"])
            environments.append(json.dumps(container["env"]))
    for text in environments:
        for secret in secret_values("dev") + secret_values("staging"):
            assert secret not in text
        assert "PASSWORD=" not in text.replace("PASSWORD_FILE=", "")


def test_docker_secrets_are_uploaded_files_only_the_service_user_reads(dev_run):
    owners = {"timescale": "70", "redis": "999", "kafka": "1000"}
    for name, uid in owners.items():
        uploads = docker_containers(dev_run)[name]["uploads"]
        secret_files = [u for u in uploads if any(s in (u.get("content") or "") for s in secret_values("dev"))
                        or u["file"].endswith("users.acl")]
        assert secret_files, name
        for upload in secret_files:
            assert (upload["owner"], upload["group"], upload["permissions"]) == (uid, uid, "0400"), upload["file"]
        key = docker_uploads(dev_run, name)
        if name != "kafka":  # Kafka's key is inline in its secret tls.properties
            assert any(f.endswith("tls.key") for f in key), name
    timescale = docker_containers(dev_run)["timescale"]
    assert "POSTGRES_PASSWORD_FILE=/var/lib/postgresql/backbone-secret-superuser-password" in timescale["envs"]
    assert not any(e.startswith("POSTGRES_PASSWORD=") for e in timescale["envs"])


def test_kubernetes_secrets_are_mounted_read_only_never_in_config_maps(staging_run):
    mounted = {"timescale": {"timescale-credentials", "timescale-tls"},
               "redis": {"redis-auth", "redis-tls"}, "redis-sentinel": {"redis-auth", "redis-tls"},
               "kafka": {"kafka-credentials"}}
    for name, secrets in mounted.items():
        spec = pod_spec(staging_run, name)
        volumes = {v["name"]: v for v in spec["volumes"]}
        by_secret = {v["secret"]["secretName"]: n for n, v in volumes.items() if "secret" in v}
        assert set(by_secret) == secrets, name
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        for secret, volume in by_secret.items():
            assert volumes[volume]["secret"]["defaultMode"] == 0o440
            assert mounts[volume]["readOnly"] is True
    for secret in ("timescale-credentials", "timescale-tls", "redis-auth", "redis-tls", "kafka-credentials"):
        assert is_secret(staging_run.k8s("Secret", secret).inputs["stringData"]), secret
    config_maps = json.dumps([plain(d.inputs) for d in staging_run.declared if d.inputs.get("kind") == "ConfigMap"])
    for value in secret_values("staging"):
        assert value not in config_maps
    assert "PRIVATE KEY" not in config_maps


def test_tls_secrets_hold_the_stacks_certificates(staging_run):
    tls = mock_tls("kubernetes", NS)
    for service in ("timescale", "redis"):
        secret = k8s(staging_run, "Secret", f"{service}-tls")
        assert secret["type"] == "kubernetes.io/tls"
        assert secret["stringData"] == {"tls.crt": tls[f"tls_{service}_cert"], "tls.key": tls[f"tls_{service}_key"],
                                        "ca.crt": tls["tls_ca_pem"]}


# --- certificates name what clients reach ----------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_each_certificate_names_the_hosts_the_contract_advertises(stack, dev_run, staging_run):
    run = {"dev": dev_run, "staging": staging_run}[stack]
    c = contract(run)
    config = stack_file_config(stack)
    tls = mock_tls(config["platform"], config["namespace"])
    hosts = {"timescale": [c.timescale.host, *(r.host for r in c.timescale.replicas)],
             "redis": [c.redis.host, *(s.host for s in c.redis.sentinels)],
             "kafka": [server.rsplit(":", 1)[0] for server in c.kafka.bootstrap_servers.split(",")]}
    if stack == "staging":  # members reach each other by pod name
        hosts["kafka"] += [f"kafka-{i}.kafka-headless.{NS}.svc.cluster.local" for i in range(3)]
        hosts["timescale"] += [f"timescale-{i}.timescale-headless.{NS}.svc.cluster.local" for i in range(2)]
        hosts["redis"] += [f"redis-{i}.redis-headless.{NS}.svc.cluster.local" for i in range(3)]
    for service, names in hosts.items():
        cert = x509.load_pem_x509_certificate(tls[f"tls_{service}_cert"].encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(tls["tls_ca_pem"].encode()))
        for host in names:
            assert _matches(host, certificates.names_of(tls[f"tls_{service}_cert"])), (service, host)


def _matches(host: str, names: set[str]) -> bool:
    return host in names or any(n.startswith("*.") and host.split(".", 1)[1] == n[2:] for n in names)


def test_a_certificate_that_does_not_name_the_stacks_hosts_stops_the_program():
    config = {**stack_file_config("staging"), "namespace": "elsewhere"}
    wrong = mock_tls("kubernetes", NS)  # issued for backbone-staging
    run = run_stack("staging", {**config, **wrong})
    assert run.error is not None and not run.declared
    message = str(run.error)
    assert "backbone:tls_kafka_cert: does not name" in message and "elsewhere" in message
    assert "python -m infra.deploy secrets --stack staging" in message


# --- PostgreSQL ------------------------------------------------------------------------------

def test_docker_postgres_is_tls_only_with_roles_by_duty(dev_run):
    container = docker_containers(dev_run)["timescale"]
    flags = dict(arg.split("=", 1) for arg in container["command"][2::2])
    assert flags["ssl"] == "on" and flags["ssl_min_protocol_version"] == "TLSv1.2"
    assert flags["password_encryption"] == "scram-sha-256"
    uploads = docker_uploads(dev_run, "timescale")
    hba = uploads[flags["hba_file"]]["content"].splitlines()
    assert hba == ["local all all peer", "hostssl all all all scram-sha-256"]
    roles = uploads["/docker-entrypoint-initdb.d/900-backbone-roles.sql"]["content"]
    _assert_roles(roles)


def test_patroni_is_tls_only_with_an_authenticated_rest_api(staging_run):
    data = k8s(staging_run, "ConfigMap", "timescale-patroni")["data"]
    patroni = json.loads(data["patroni.yaml"])
    pg = patroni["postgresql"]
    assert pg["parameters"]["ssl"] == "on" and pg["parameters"]["ssl_min_protocol_version"] == "TLSv1.2"
    assert all(line.startswith(("local ", "hostssl ")) for line in pg["pg_hba"])
    assert all(line.endswith(("scram-sha-256", "clientcert=verify-ca", "peer")) for line in pg["pg_hba"])
    assert "hostssl replication standby all scram-sha-256 clientcert=verify-ca" in pg["pg_hba"]
    replication = pg["authentication"]["replication"]
    assert replication["sslmode"] == "verify-full" and replication["sslrootcert"].endswith("ca.crt")
    assert "password" not in json.dumps(pg["authentication"])  # added from the Secret at start
    api = patroni["restapi"]
    assert api["certfile"] and api["keyfile"] and api["cafile"]
    assert api["authentication"] == {"username": "patroni"}
    assert patroni["ctl"]["insecure"] is False
    start = data["start-patroni.sh"]
    assert 'cfg["restapi"]["authentication"]["password"] = secret("patroni-api-password")' in start
    assert "umask 077" in start
    container = pod_spec(staging_run, "timescale")["containers"][0]
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    _assert_roles(data["roles.sql"])
    credentials = k8s(staging_run, "Secret", "timescale-credentials")["stringData"]
    assert set(credentials) == {"password", "owner-password", "reader-password", "restore-password",
                                "superuser-password", "replication-password", "patroni-api-password"}


def _assert_roles(sql: str) -> None:
    base = "LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    assert f"CREATE ROLE backbone_owner {base} NOCREATEDB PASSWORD :'owner_pw';" in sql
    assert f"CREATE ROLE backbone {base} NOCREATEDB PASSWORD :'app_pw';" in sql
    assert f"CREATE ROLE backbone_reader {base} NOCREATEDB PASSWORD :'reader_pw';" in sql
    assert f"CREATE ROLE backbone_restore {base} CREATEDB PASSWORD :'restore_pw';" in sql
    assert "CREATE DATABASE backbone OWNER backbone_owner;" in sql
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO backbone;" in sql
    assert "GRANT SELECT ON TABLES TO backbone_reader;" in sql
    assert " SUPERUSER" not in sql and "mock-secret" not in sql


# --- Redis and Sentinel ----------------------------------------------------------------------

def _assert_tls_only(conf: str, port: int) -> None:
    lines = conf.splitlines()
    assert "port 0" in lines and f"tls-port {port}" in lines
    assert [line for line in lines if line.startswith("port ")] == ["port 0"]
    assert "tls-replication yes" in lines and 'tls-protocols "TLSv1.2 TLSv1.3"' in lines
    assert any(line.startswith("tls-ca-cert-file ") for line in lines)


def test_redis_is_tls_only_on_both_platforms(dev_run, staging_run):
    _assert_tls_only(docker_uploads(dev_run, "redis")["/usr/local/etc/redis.conf"]["content"], 6379)
    files = k8s(staging_run, "ConfigMap", "redis-config")["data"]
    _assert_tls_only(files["redis.conf"], 6379)
    _assert_tls_only(files["sentinel.conf"], 26379)


@pytest.mark.parametrize("where", ["docker", "kubernetes"])
def test_redis_acl_users_by_duty_and_the_default_user_off(where, dev_run, staging_run):
    if where == "docker":
        acl = docker_uploads(dev_run, "redis")["/usr/local/etc/backbone-users.acl"]["content"]
    else:
        acl = k8s(staging_run, "Secret", "redis-auth")["stringData"]["users.acl"]
    users = {line.split()[1]: line for line in acl.splitlines()}
    assert set(users) == {"default", "backbone", "replication", "sentinel", "admin"}
    assert users["default"] == "user default reset off nopass -@all"
    app = users["backbone"].split()
    assert "-@admin" in app and "-@dangerous" in app and "~*" not in app and "resetchannels" in app
    assert [w for w in app if w.startswith("~")] == ["~emp:cache:*"]  # the stack's cache_policy namespace
    assert users["replication"].split()[5:] == ["resetchannels", "-@all", "+psync", "+replconf", "+ping"]
    assert "+@all" not in users["sentinel"]
    for secret in MOCK_SECRETS.values():
        assert secret not in acl  # '#<sha256>' hashes only


def test_sentinels_require_a_password_and_are_reachable_only_by_their_clients(staging_run):
    auth = k8s(staging_run, "Secret", "redis-auth")["stringData"]["sentinel-auth.conf"]
    password = MOCK_SECRETS["sentinel_password"]
    assert f'requirepass "{password}"' in auth and f'sentinel sentinel-pass "{password}"' in auth
    # on the servers the Sentinels are the `sentinel` ACL user, whose password no client has
    assert "sentinel auth-user backbone sentinel" in auth
    assert f'sentinel auth-pass backbone "{MOCK_SECRETS["redis_sentinel_password"]}"' in auth
    policy = k8s(staging_run, "NetworkPolicy", "redis-sentinel")["spec"]
    [rule] = policy["ingress"]
    assert [p["port"] for p in rule["ports"]] == [26379]
    sources = [f["podSelector"]["matchLabels"] for f in rule["from"]]
    assert {} not in sources, "not every pod of the namespace"
    assert {"backbone.io/redis-sentinel-client": "true"} in sources
    assert {s.get("app.kubernetes.io/name") for s in sources} >= {"redis", "redis-sentinel"}


# --- Kafka -----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["docker", "kubernetes"])
def test_kafka_has_no_plaintext_listener_and_an_authorizer(where, dev_run, staging_run):
    if where == "docker":
        text = docker_uploads(dev_run, "kafka")["/opt/kafka/config/backbone-server.properties"]["content"]
    else:
        text = k8s(staging_run, "ConfigMap", "kafka-config")["data"]["server.properties"]
    p = props(text)
    assert p["listener.security.protocol.map"] == "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"
    assert "PLAINTEXT" not in text
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert p["inter.broker.listener.name"] == "INTERNAL"
    assert p["listener.name.internal.ssl.client.auth"] == p["listener.name.controller.ssl.client.auth"] == "required"
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] == "false"
    assert "User:kafka" in p["super.users"].split(";")
    assert p["ssl.enabled.protocols"] == "TLSv1.2,TLSv1.3" and p["ssl.keystore.type"] == "PEM"
    assert "PRIVATE KEY" not in text


def test_kafka_brokers_hold_salted_scram_credentials_not_passwords(staging_run):
    files = k8s(staging_run, "Secret", "kafka-credentials")["stringData"]
    scram = files["scram-credentials"].splitlines()
    assert sorted(line.split("name=")[1].split(",")[0] for line in scram) == [
        "admin", "backbone", "bridge", "drills", "relay"]
    for value in MOCK_SECRETS.values():
        assert value not in files["scram-credentials"]
    tls = props(files["tls.properties"])
    assert tls["ssl.keystore.key"].startswith("-----BEGIN PRIVATE KEY-----\\n")
    assert set(tls) == {"ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.certificates"}


def test_the_scram_credential_is_rfc5802s_salted_password():
    import base64
    import hashlib
    import re
    line = security.scram_credential("relay", "secret-pass")
    salt = base64.b64decode(re.search(r'salt="([^"]+)"', line).group(1))
    salted = base64.b64decode(re.search(r'saltedpassword="([^"]+)"', line).group(1))
    assert salted == hashlib.pbkdf2_hmac("sha512", b"secret-pass", salt, 8192)
    assert line == security.scram_credential("relay", "secret-pass"), "the same text every run"
    assert security.scram_credential("bridge", "secret-pass") != line


# --- the outputs contract --------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_the_contract_carries_the_ca_and_how_to_verify_it(stack, dev_run, staging_run):
    run = {"dev": dev_run, "staging": staging_run}[stack]
    config = stack_file_config(stack)
    ca = mock_tls(config["platform"], config["namespace"])["tls_ca_pem"]
    public = run.outputs["backbone"]
    for section in ("timescale", "redis", "kafka"):
        assert public[section]["ca_pem"] == ca, section
    c = contract(run)
    assert c.timescale.sslmode == "verify-full" and c.redis.tls is True
    assert (c.kafka.security_protocol, c.kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert {d: r.user for d, r in c.timescale.roles.items()} == {
        "owner": "backbone_owner", "reader": "backbone_reader", "restore": "backbone_restore"}
    assert {d: p.user for d, p in c.kafka.principals.items()} == {
        "admin": "admin", "relay": "relay", "bridge": "bridge", "drills": "drills"}
    assert c.timescale.user == "backbone" and c.redis.username == "backbone" and c.kafka.sasl_username == "backbone"
    assert all(r.password for r in c.timescale.roles.values()) and all(p.password for p in c.kafka.principals.values())
    if stack == "staging":
        assert c.redis.sentinel_password.get_secret_value() == MOCK_SECRETS["sentinel_password"]
        assert c.redis.sentinel_username == "default"


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_no_superuser_replication_or_admin_secret_in_the_outputs(stack, dev_run, staging_run):
    run = {"dev": dev_run, "staging": staging_run}[stack]
    everything = json.dumps(run.outputs)
    for key in ("timescale_superuser_password", "timescale_replication_password", "patroni_api_password",
                "redis_admin_password", "redis_replication_password", "redis_sentinel_password"):
        assert MOCK_SECRETS[key] not in everything, key
    assert '"postgres"' not in everything
    assert "PRIVATE KEY" not in everything
