"""Each command needs only the contract sections it uses; declared topics are validated
once, the same way, by `topics` and `validate`, before any broker is contacted."""
import json

import pytest

from tests.listener import RecordingListener

from .run_in_process import run


@pytest.fixture
def listener():
    recorder = RecordingListener()
    yield recorder
    recorder.close()


def contract_file(tmp_path, port, **sections):
    doc = {"contract_version": 1, "tier": "institutional", "platform": "docker", **sections}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("config, problem", [
    ({"min.insync.replicas": None}, "min.insync.replicas"),
    ({"min.insync.replicas": "two"}, "min.insync.replicas"),
    ({"min.insync.replicas": "3"}, "min.insync.replicas"),
    ({"no.such.key": "1"}, "no.such.key"),
])
def test_invalid_topic_declarations_are_exit_2_in_validate_and_topics_without_contacting_kafka(
        listener, tmp_path, config, problem):
    kafka = {"bootstrap_servers": f"127.0.0.1:{listener.port}", "expected_brokers": 3,
             "topics": [{"name": "ingest.events", "partitions": 3, "replication_factor": 2, "config": config}]}
    outputs = contract_file(tmp_path, listener.port, kafka=kafka,
                            timescale={"host": "127.0.0.1", "port": listener.port},
                            redis={"host": "127.0.0.1", "port": listener.port})
    for argv in (["validate"], ["probe"], ["topics", "plan"], ["topics", "check"]):
        code, out, err, elapsed = run(*argv, "--outputs", outputs, "--timeout", "1")
        assert code == 2, (argv, err)
        assert problem in err and elapsed < 2, argv
    assert listener.connections == 0


def test_migrate_needs_only_the_timescale_section_and_topics_only_kafka(listener, tmp_path):
    only_db = contract_file(tmp_path, listener.port, timescale={"host": "127.0.0.1", "port": listener.port})
    code, out, err, _ = run("topics", "plan", "--outputs", only_db)
    assert code == 2 and "has no Kafka" in err
    code, out, err, _ = run("drill", "run", "--service", "redis", "--outputs", only_db)
    assert code == 2 and "needs the redis section" in err
    assert listener.connections == 0
    # migrate goes ahead and reaches the database (here a listener that never answers)
    code, out, err, _ = run("migrate", "check", "--outputs", only_db, "--timeout", "1")
    assert code == 1 and "needs" not in err
    assert listener.connections >= 1


def test_validate_reports_each_missing_section_as_such(listener, tmp_path):
    only_db = contract_file(tmp_path, listener.port, timescale={"host": "127.0.0.1", "port": listener.port})
    code, out, err, _ = run("validate", "--outputs", only_db, "--timeout", "1", "--format", "json")
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    for name, section in (("redis", "redis"), ("kafka", "kafka"), ("topics", "kafka"), ("smoke", "redis, kafka")):
        assert checks[name]["code"] == "not_configured", name
        assert f"no {section} section" in checks[name]["message"], name
    assert checks["timescale"]["code"] in ("timeout", "unreachable")  # the one it has was tried
    code, out, err, _ = run("validate", "--outputs", only_db, "--timeout", "1")
    assert "- redis: not in the contract" in out
