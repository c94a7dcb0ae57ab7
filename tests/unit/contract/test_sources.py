"""Config sources: precedence, URL composition, and every config error naming its field."""
import json

import pytest

from backbone.contract import Contract, split_secrets
from backbone.contract.sources import ConfigError, Sources, load_contract

PLANTED = "s3cr3t-PLANTED-pw"


def institutional(**over):
    doc = {"contract_version": 1, "environment": "dev", "tier": "institutional", "platform": "docker",
           "timescale": {"host": "ts.example", "port": 5433, "password": PLANTED},
           "redis": {"host": "redis.example", "port": 6380, "password": PLANTED},
           "kafka": {"bootstrap_servers": "k1:9092,k2:9092", "expected_brokers": 2,
                     "topics": [{"name": "ingest.events", "partitions": 3, "replication_factor": 2}]}}
    doc.update(over)
    return doc


def write_outputs(tmp_path, doc, split=True):
    path = tmp_path / "outputs.json"
    if split:
        public, secret = split_secrets(doc)
        path.write_text(json.dumps({"backbone": public, "backbone_secrets": secret}))
    else:
        path.write_text(json.dumps(doc))
    return path


def load(**kw):
    kw.setdefault("environ", {})
    return load_contract(Sources(**kw))


def test_no_source_at_all_is_the_bootstrap_tier():
    c = load()
    assert c.tier == "bootstrap" and c.platform == "embedded"
    assert c.bootstrap.store.endswith(".db")
    assert c.timescale is None and c.redis is None and c.kafka is None


def test_outputs_file_merges_the_two_stack_outputs(tmp_path):
    c = load(outputs=write_outputs(tmp_path, institutional()))
    assert c.timescale.password.get_secret_value() == PLANTED
    assert c.kafka.expected_brokers == 2


def test_a_bare_contract_document_is_accepted_too(tmp_path):
    c = load(outputs=write_outputs(tmp_path, institutional(), split=False))
    assert c.redis.port == 6380


def test_precedence_outputs_then_environment_then_env_file_then_extra(tmp_path):
    outputs = write_outputs(tmp_path, institutional())
    env_file = tmp_path / ".env"
    env_file.write_text("TIMESCALEDB_POOL_SIZE=7\nREDIS_PORT=7001\n")
    environ = {"TIMESCALEDB_POOL_SIZE": "3", "REDIS_PORT": "7000", "BACKBONE_TIMESCALE_PORT": "6000"}
    c = load(outputs=outputs, environ=environ, env_file=env_file, extras=("REDIS_PORT=7002",))
    assert c.timescale.port == 6000          # environment over outputs
    assert c.timescale.pool.size == 7        # env-file over environment
    assert c.redis.port == 7002              # extra over env-file


def test_env_file_is_not_exported(tmp_path, monkeypatch):
    import os
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_URL=redis://:pw@h:1/0\nTIMESCALEDB_URL=postgresql://u@h/db\n"
                        "KAFKA_BOOTSTRAP_SERVERS=h:9092\n")
    monkeypatch.delenv("REDIS_URL", raising=False)
    c = load(env_file=env_file)
    assert c.tier == "institutional"
    assert "REDIS_URL" not in os.environ


def test_canonical_name_beats_alias_within_one_source():
    c = load(extras=("BACKBONE_REDIS_PORT=1", "REDIS_PORT=2", "REDIS_HOST=h", "TIMESCALEDB_HOST=t",
                     "KAFKA_BOOTSTRAP_SERVERS=k:1"))
    assert c.redis.port == 1


def test_service_settings_alone_select_the_institutional_tier():
    c = load(environ={"TIMESCALEDB_URL": "postgresql://u:p@db:5432/x", "REDIS_URL": "redis://r:6379/0",
                      "KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    assert c.tier == "institutional"


def test_a_contract_with_only_timescale_settings_is_valid_and_names_what_it_lacks():
    # migrations need only the database; each command asks for the sections it uses
    contract = load(environ={"TIMESCALEDB_URL": "postgresql://u:p@db:5432/x"})
    assert contract.tier == "institutional" and contract.timescale is not None
    assert contract.missing("timescale") == [] and contract.missing("timescale", "redis", "kafka") == ["redis", "kafka"]


def test_explicit_url_wins_over_parts():
    c = load(environ={"TIMESCALEDB_URL": "postgresql://alice:pw@urlhost:6543/urldb",
                      "TIMESCALEDB_HOST": "parthost", "TIMESCALEDB_PORT": "1111",
                      "REDIS_URL": "rediss://:pw@rhost:6390/2", "REDIS_HOST": "other",
                      "KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    # the URL names no sslmode: the contract's (the default) is added, so the manifest is true
    assert c.timescale.dsn() == "postgresql://alice:pw@urlhost:6543/urldb?sslmode=prefer"
    assert c.timescale.target() == {"host": "urlhost", "port": 6543, "database": "urldb", "user": "alice",
                                    "sslmode": "prefer"}
    assert c.redis.connection_url() == "rediss://:pw@rhost:6390/2"
    assert c.redis.target()["tls"] is True


def test_url_composed_from_parts_with_tls_and_escaping():
    c = load(extras=("TIMESCALEDB_HOST=db.internal", "TIMESCALEDB_USER=ops", "TIMESCALEDB_PASSWORD=p@ss/w:rd",
                     "TIMESCALEDB_SSLMODE=verify-full", "TIMESCALEDB_DATABASE=market",
                     "REDIS_HOST=cache", "REDIS_PASSWORD=p@ss", "REDIS_TLS=true",
                     "KAFKA_BOOTSTRAP_SERVERS=k:9092"))
    assert c.timescale.dsn() == "postgresql://ops:p%40ss%2Fw%3Ard@db.internal:5432/market?sslmode=verify-full"
    assert c.redis.connection_url() == "rediss://:p%40ss@cache:6379/0"


def test_pool_settings_from_the_seed_names():
    c = load(extras=("TIMESCALEDB_POOL_SIZE=12", "TIMESCALEDB_MAX_OVERFLOW=4", "TIMESCALEDB_POOL_TIMEOUT=2.5",
                     "TIMESCALEDB_POOL_RECYCLE=600", "TIMESCALEDB_POOL_PRE_PING=false",
                     "TIMESCALEDB_HOST=h", "REDIS_HOST=r", "KAFKA_BOOTSTRAP_SERVERS=k:1"))
    assert c.timescale.pool.model_dump() == {"size": 12, "max_overflow": 4, "timeout_s": 2.5,
                                             "recycle_s": 600, "pre_ping": False}


def test_pool_settings_apply_to_the_postgresql_target_only():
    bootstrap = load(extras=("BACKBONE_TIER=bootstrap", "TIMESCALEDB_POOL_SIZE=12"))
    assert "pool" not in json.dumps(bootstrap.manifest())  # the embedded store has no pool
    institutional_ = load(extras=("TIMESCALEDB_POOL_SIZE=12", "TIMESCALEDB_HOST=h", "REDIS_HOST=r",
                                  "KAFKA_BOOTSTRAP_SERVERS=k:1"))
    assert institutional_.manifest()["timescale"]["pool"]["size"] == 12


def test_error_names_the_key_that_set_the_bad_value():
    with pytest.raises(ConfigError, match=r"timescale.port \(set by TIMESCALEDB_PORT from --extra\)"):
        load(extras=("TIMESCALEDB_PORT=70000", "REDIS_HOST=r", "KAFKA_BOOTSTRAP_SERVERS=k:1"))


@pytest.mark.parametrize("extra, field", [
    ("TIMESCALEDB_POOL_SIZE=many", "TIMESCALEDB_POOL_SIZE"),
    ("TIMESCALEDB_POOL_SIZE=0", "timescale.pool.size"),
    ("TIMESCALEDB_PORT=70000", "timescale.port"),
    ("TIMESCALEDB_POOL_PRE_PING=maybe", "TIMESCALEDB_POOL_PRE_PING"),
    ("TIMESCALEDB_SSLMODE=sometimes", "timescale.sslmode"),
    ("TIMESCALEDB_URL=mysql://u:p@h/db", "timescale.url"),
    ("REDIS_URL=http://h", "redis.url"),
    ("KAFKA_BOOTSTRAP_SERVERS=nohostport", "kafka.bootstrap_servers"),
    ("BACKBONE_TIER=gold", "tier"),
    ("BACKBONE_PLATFORM=mainframe", "platform"),
    ("NOT_A_SETTING=1", "NOT_A_SETTING"),
    ("no-equals-sign", "no-equals-sign"),
])
def test_every_config_error_names_its_field(extra, field):
    with pytest.raises(ConfigError) as info:
        load(extras=(extra, "TIMESCALEDB_HOST=h", "REDIS_HOST=r", "KAFKA_BOOTSTRAP_SERVERS=k:1")
             if not extra.startswith("KAFKA") else (extra, "TIMESCALEDB_HOST=h", "REDIS_HOST=r"))
    assert field in str(info.value)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "invalid JSON at line 1"),
    ("[1, 2]", "expected a JSON object"),
    ('{"something": 1}', "no 'backbone' output"),
    ('{"backbone": {"tier": "institutional"}}', "contract_version (from --outputs"),
    ('{"backbone": {"contract_version": 1}, "backbone_secrets": {"timescale": null}}',
     "backbone_secrets.timescale: is null"),
    ('{"backbone": {"contract_version": 1, "tier": "institutional", "redis": null}}', "redis: the section is null"),
    ('{"backbone": {"contract_version": 2}}', "contract_version"),
    ('{"backbone": {"contract_version": 1, "redis": {"port": "abc"}, "tier": "bootstrap"}}', "redis.port"),
    ('{"backbone": {"contract_version": 1, "surprise": true}}', "surprise: unknown field"),
    ('{"backbone": {"contract_version": 1}, "backbone_secrets": {"redis": {"host": "x"}}}',
     "backbone_secrets.redis.host"),
])
def test_malformed_outputs_name_the_problem(tmp_path, content, needle):
    path = tmp_path / "outputs.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load(outputs=path)


def test_missing_outputs_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load(outputs=tmp_path / "nope.json")


def test_outputs_and_stack_are_alternatives(tmp_path):
    with pytest.raises(ConfigError, match="alternatives"):
        load(outputs=tmp_path / "x.json", stack="dev")


def test_stack_without_pulumi_cli_says_so(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="pulumi CLI is not on PATH"):
        load(stack="dev")


def test_unknown_key_in_env_file_is_named(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_PROT=6379\n")
    with pytest.raises(ConfigError, match="REDIS_PROT"):
        load(env_file=env_file)


def test_config_errors_never_echo_secret_values():
    with pytest.raises(ConfigError) as info:
        load(extras=(f"TIMESCALEDB_URL=mysql://u:{PLANTED}@h/db", "REDIS_HOST=r", "KAFKA_BOOTSTRAP_SERVERS=k:1"))
    assert PLANTED not in str(info.value)


def test_contract_roundtrip_through_split_and_merge():
    c = Contract.model_validate(institutional())
    public, secret = split_secrets(institutional())
    assert PLANTED not in json.dumps(public)
    assert PLANTED in json.dumps(secret)
    assert PLANTED not in json.dumps(c.manifest())
    assert c.manifest()["timescale"]["credentials"] == "set"


def test_docs_list_every_setting():
    from pathlib import Path

    from backbone.contract.sources import SETTINGS
    doc = (Path(__file__).parents[3] / "docs" / "contract.md").read_text()
    for name, setting in SETTINGS.items():
        assert f"| `{name}` | `{setting.path}` |" in doc, name
        for alias in setting.aliases:
            assert f"`{alias}`" in doc, alias


def test_each_services_ca_is_read_from_the_file_a_variable_names(tmp_path):
    from backbone.local.pki import Authority
    ca = Authority(tmp_path / "ca")
    got = load_contract(Sources(environ={"TIMESCALEDB_HOST": "db", "TIMESCALEDB_SSLMODE": "verify-full",
                                         "TIMESCALEDB_SSLROOTCERT": str(ca.cert_path),
                                         "REDIS_CA_FILE": str(ca.cert_path),
                                         "BACKBONE_KAFKA_CA_FILE": str(ca.cert_path)}))
    assert got.timescale.ca_pem == got.redis.ca_pem == got.kafka.ca_pem == ca.pem


@pytest.mark.parametrize("content, problem", [(None, "no such file"), ("not a certificate", "holds no PEM certificate"),
                                              ("-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nS3CRETKEY\n"
                                               "-----END PRIVATE KEY-----\n-----END CERTIFICATE-----\n",
                                               "holds a private key")])
def test_a_ca_file_that_is_missing_or_no_ca_is_refused_by_name_without_its_content(tmp_path, content, problem):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_contract(Sources(environ={"TIMESCALEDB_HOST": "db", "PGSSLROOTCERT": str(path)}))
    assert problem in str(info.value) and "S3CRETKEY" not in str(info.value)
    assert "PGSSLROOTCERT" in str(info.value) or "timescale.ca_pem" in str(info.value)
