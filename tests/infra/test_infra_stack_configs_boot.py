"""The dev stack's generated service files, booted for real by the local binaries: the files
a docker container would be given (its uploads, taken from the mocked run), with container
paths and ports moved into a temp directory. No docker engine runs here, so this is where the
stacks' redis.conf + ACL file, PostgreSQL's TLS settings + pg_hba + roles script, and Kafka's
secured server.properties + salted SCRAM credentials prove they work, and refuse what they
must refuse."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from backbone.local.binaries import find_binaries
from backbone.local.services import free_port, pg_user
from stack_harness import MOCK_SECRETS, mock_tls, plain

pytestmark = pytest.mark.timeout(240)
BINS = find_binaries()
CONTAINER = "docker:index/container:Container"


def uploads(run, name: str) -> dict[str, str]:
    [container] = [d for d in run.of_type(CONTAINER) if d.name == f"{name}-container"]
    return {u["file"]: u["content"] for u in plain(container.inputs)["uploads"]}


def materialise(files: dict[str, str], prefix: str, where: Path, owner: str | None = None) -> dict[str, Path]:
    """Write the uploads whose path starts with `prefix` into `where` (0600); path -> local file."""
    out = {}
    for path, content in files.items():
        if path.startswith(prefix):
            local = where / path[len(prefix):]
            local.write_text(content)
            os.chmod(local, 0o600)
            if owner:
                entry = pwd.getpwnam(owner)
                os.chown(local, entry.pw_uid, entry.pw_gid)
            out[path] = local
    return out


def rewrite(text: str, replacements: dict[str, str]) -> str:
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    return text


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"port {port} never opened:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- Redis -----------------------------------------------------------------------------------

@pytest.mark.skipif(not BINS.redis_server and not os.environ.get("CI"), reason="redis-server is not installed (scripts/setup.sh)")
def test_the_stacks_redis_files_boot_tls_only_with_acl_users(dev_run, tmp_path):
    import redis
    files = uploads(dev_run, "redis")
    local = materialise(files, "/usr/local/etc/", tmp_path)
    port = free_port()
    conf = rewrite(files["/usr/local/etc/redis.conf"], {"/usr/local/etc/": f"{tmp_path}/", "dir /data": f"dir {tmp_path}",
                                                       "tls-port 6379": f"tls-port {port}", "bind 0.0.0.0": "bind 127.0.0.1"})
    local["/usr/local/etc/redis.conf"].write_text(conf)
    (tmp_path / "backbone-auth.conf").write_text(rewrite(files["/usr/local/etc/backbone-auth.conf"],
                                                         {"/usr/local/etc/": f"{tmp_path}/"}))
    log = tmp_path / "redis.log"
    proc = subprocess.Popen([str(BINS.redis_server), str(local["/usr/local/etc/redis.conf"])],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port, proc, log)
        tls = {"ssl": True, "ssl_ca_certs": str(tmp_path / "backbone-ca.crt"), "ssl_check_hostname": True,
               "socket_timeout": 5}

        def client(**kw):
            return redis.Redis(host="127.0.0.1", port=port, **tls, **kw)
        app = client(username="backbone", password=MOCK_SECRETS["redis_password"])
        assert app.ping() and app.set("emp:cache:x", "1") and app.get("emp:cache:x") == b"1"
        for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("ACL", "LIST"), ("KEYS", "*"), ("REPLICAOF", "NO", "ONE"),
                        ("SET", "elsewhere:x", "1")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.execute_command(*command)
        with pytest.raises(redis.exceptions.AuthenticationError):  # the default user is off
            client().ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            client(username="backbone", password="wrong").ping()
        with pytest.raises(redis.exceptions.ConnectionError):  # no plaintext listener
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=3,
                        username="backbone", password=MOCK_SECRETS["redis_password"]).ping()
        replication = client(username="replication", password=MOCK_SECRETS["redis_replication_password"])
        with pytest.raises(redis.exceptions.NoPermissionError):
            replication.get("emp:cache:x")
        # the container's healthcheck command, as docker would run it
        [container] = [d for d in dev_run.of_type(CONTAINER) if d.name == "redis-container"]
        health = rewrite(plain(container.inputs)["healthcheck"]["tests"][1],
                         {"/usr/local/etc/": f"{tmp_path}/", "-p 6379": f"-p {port} -h 127.0.0.1"})
        assert subprocess.run(["sh", "-c", health], timeout=20).returncode == 0
    finally:
        stop(proc)


# --- PostgreSQL ------------------------------------------------------------------------------

@pytest.mark.skipif(not BINS.pg_bin and not os.environ.get("CI"), reason="PostgreSQL is not installed (scripts/setup.sh)")
def test_the_stacks_postgres_files_boot_tls_only_with_roles_by_duty(dev_run):
    # the postgres user must reach it: not under pytest's root-only temp directory
    home = Path(tempfile.mkdtemp(prefix="backbone-stack-pg-"))
    try:
        _boot_postgres(dev_run, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _boot_postgres(dev_run, home: Path) -> None:
    import psycopg
    user = pg_user()
    if user:
        shutil.chown(home, user)
    os.chmod(home, 0o700)
    files = uploads(dev_run, "timescale")
    prefix = "/var/lib/postgresql/backbone-"
    materialise(files, prefix, home, owner=user)
    [container] = [d for d in dev_run.of_type(CONTAINER) if d.name == "timescale-container"]
    command = plain(container.inputs)["command"]
    settings = dict(arg.split("=", 1) for arg in command[2::2])
    port = free_port()
    settings = {k: rewrite(v, {prefix: f"{home}/"}) for k, v in settings.items()}
    settings.update({"port": str(port), "listen_addresses": "127.0.0.1", "unix_socket_directories": str(home)})
    run = {"user": pwd.getpwnam(user).pw_uid, "group": pwd.getpwnam(user).pw_gid} if user else {}
    data = home / "data"
    init = subprocess.run([str(BINS.pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=peer",
                           "--auth-host=scram-sha-256", "--no-instructions"], capture_output=True, text=True,
                          timeout=120, **run)
    assert init.returncode == 0, init.stderr
    log = home / "postgres.log"
    argv = [str(BINS.pg_bin / "postgres"), "-D", str(data)] + [a for k, v in settings.items() for a in ("-c", f"{k}={v}")]
    proc = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True, **run)
    try:
        wait_port(port, proc, log)
        roles = rewrite(files["/docker-entrypoint-initdb.d/900-backbone-roles.sql"], {prefix: f"{home}/"})
        (home / "roles.sql").write_text(roles)
        done = subprocess.run([str(BINS.pg_bin / "psql"), "-X", "-h", str(home), "-p", str(port), "-U", "postgres",
                               "-d", "postgres", "-f", str(home / "roles.sql")], capture_output=True, text=True,
                              timeout=120, **run)
        assert done.returncode == 0, done.stderr
        assert MOCK_SECRETS["timescale_password"] not in done.stdout + done.stderr

        def connect(role: str, password: str, sslmode: str = "verify-full", host: str = "127.0.0.1"):
            return psycopg.connect(host=host, port=port, dbname="backbone", user=role, password=password,
                                   sslmode=sslmode, sslrootcert=str(home / "ca.crt"), connect_timeout=5,
                                   autocommit=True)
        pw = {role: MOCK_SECRETS[key] for role, key in (
            ("backbone_owner", "timescale_owner_password"), ("backbone", "timescale_password"),
            ("backbone_reader", "timescale_reader_password"), ("backbone_restore", "timescale_restore_password"))}
        with connect("backbone_owner", pw["backbone_owner"]) as owner:
            assert owner.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
            owner.execute("CREATE TABLE bars (ts timestamptz, v int)")
            assert owner.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        with connect("backbone", pw["backbone"], host="localhost") as app:
            app.execute("INSERT INTO bars VALUES (now(), 1)")  # default privileges
            for statement in ("CREATE ROLE intruder", "ALTER SYSTEM SET work_mem = '1GB'",
                              "CREATE DATABASE scratch", "DROP TABLE bars"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(statement)
        with connect("backbone_reader", pw["backbone_reader"]) as reader:
            assert reader.execute("SELECT count(*) FROM bars").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("INSERT INTO bars VALUES (now(), 2)")
        with connect("backbone_restore", pw["backbone_restore"]) as restore:
            restore.execute("CREATE DATABASE scratch")
            restore.execute("DROP DATABASE scratch")
        with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):  # plaintext refused
            connect("backbone", pw["backbone"], sslmode="disable")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect("backbone", "wrong")
        with pytest.raises(psycopg.OperationalError):  # the superuser has no network login: no password set
            connect("postgres", MOCK_SECRETS["timescale_superuser_password"])
    finally:
        stop(proc)


# --- Kafka -----------------------------------------------------------------------------------

@pytest.mark.skipif(not (BINS.java and BINS.kafka_libs) and not os.environ.get("CI"), reason="Kafka is not installed (scripts/setup.sh)")
def test_the_stacks_kafka_files_boot_sasl_ssl_with_an_authorizer(dev_run, tmp_path):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    files = uploads(dev_run, "kafka")
    prefix = "/opt/kafka/config/backbone-"
    client_port, controller_port, internal_port = free_port(), free_port(), free_port()
    server = rewrite(files[f"{prefix}server.properties"], {
        ":9092": f":{client_port}", ":9093": f":{controller_port}", ":9094": f":{internal_port}",
        "/var/lib/kafka/data": str(tmp_path / "data")})
    props = tmp_path / "server.properties"
    props.write_text(server + files[f"{prefix}tls.properties"])
    java = [str(BINS.java), "-Xms128m", "-Xmx512m", "-cp", f"{BINS.kafka_libs}/*"]
    scram = [a for line in files[f"{prefix}scram-credentials"].splitlines() for a in ("--add-scram", line)]
    fmt = subprocess.run(java + ["kafka.tools.StorageTool", "format", f"--cluster-id={files[f'{prefix}cluster-id']}",
                                 "-c", str(props), *scram], capture_output=True, text=True, timeout=120)
    assert fmt.returncode == 0, fmt.stderr[-2000:]
    log = tmp_path / "kafka.log"
    proc = subprocess.Popen(java + ["kafka.Kafka", str(props)], stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    ca = tmp_path / "ca.pem"
    ca.write_text(mock_tls("docker", "backbone-dev")["tls_ca_pem"])
    try:
        wait_port(client_port, proc, log)

        def admin(user: str, password: str, protocol: str = "SASL_SSL") -> AdminClient:
            return AdminClient({"bootstrap.servers": f"127.0.0.1:{client_port}", "security.protocol": protocol,
                                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                                "ssl.ca.location": str(ca), "ssl.endpoint.identification.algorithm": "https",
                                "log_level": 0})

        def create(client: AdminClient, name: str) -> None:
            client.create_topics([NewTopic(name, 1, 1)], operation_timeout=20)[name].result(timeout=60)
        create(admin("admin", MOCK_SECRETS["kafka_admin_password"]), "ingest.events")  # a super user
        with pytest.raises(KafkaException, match="(?i)authoriz"):  # no ACL: refused
            create(admin("relay", MOCK_SECRETS["kafka_relay_password"]), "relay.topic")
        assert admin("relay", MOCK_SECRETS["kafka_relay_password"]).list_topics(timeout=30).brokers
        with pytest.raises(KafkaException):  # librdkafka reports the refused login as a transport failure
            admin("relay", "wrong").list_topics(timeout=10)
        with pytest.raises(KafkaException):  # a plaintext client gets nothing from a TLS listener
            AdminClient({"bootstrap.servers": f"127.0.0.1:{client_port}", "log_level": 0}).list_topics(timeout=8)
    finally:
        stop(proc)
