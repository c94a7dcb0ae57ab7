"""`backbone topics plan|apply|check` against a real 3-broker Kafka 4.1 KRaft cluster.

Everything is verified on the broker with the AdminClient, never through backbone's own
output. The module boots its own environment (`local up --bare --kafka-brokers 3`), separate from
the session's, under the same skip policy (CI=true: missing binaries fail).
"""
import copy
import json
import time

import pytest
from confluent_kafka import KafkaException, Consumer, TopicCollection, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                   ResourceType)

from backbone.clients.kafka import kafka_client_config
from backbone.contract import Contract, merge_outputs
from backbone.topics.check import topics_check
from backbone.contract.sources import Sources, load_contract

from ..conftest import local_environment, run_backbone

DECLARED = {"ingest.events": 6, "ingest.metrics": 3}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # --bare: `local up` would otherwise run `topics apply` itself, and the first test here
    # must see `topics apply` create the topics on an empty cluster.
    for env in local_environment(tmp_path_factory, "topics", "--bare", "--kafka-brokers", "3"):
        document = env["contract"]
        # as the admin principal (the cluster is secured: TLS, SCRAM, ACLs)
        contract = Contract.model_validate(merge_outputs(document))
        admin = AdminClient(kafka_client_config(contract.kafka, 10, "admin"))
        yield {"outputs": env["outputs"], "document": document, "admin": admin, "contract": contract,
               "secrets": list(_leaves(document["backbone_secrets"]))}


def _leaves(value):
    """Every secret string of the contract's secret half (principals' passwords are nested)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, str):
        yield value


def topics(cluster, *args, outputs=None):
    proc = run_backbone("topics", *args, "--outputs", str(outputs or cluster["outputs"]), timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    for secret in cluster["secrets"]:
        assert secret not in proc.stdout + proc.stderr
    return proc


def topics_json(cluster, *args, outputs=None):
    proc = topics(cluster, *args, "--format", "json", outputs=outputs)
    return proc, json.loads(proc.stdout)


def variant(cluster, tmp_path, edit):
    """A modified copy of outputs.json: topics come from the contract, so edit the contract."""
    document = copy.deepcopy(cluster["document"])
    edit({t["name"]: t for t in document["backbone"]["kafka"]["topics"]}, document["backbone"]["kafka"]["topics"])
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    return path


# --- what the broker says ----------------------------------------------------------------

def existing(cluster):
    return set(cluster["admin"].list_topics(timeout=10).topics)


def wait_for(condition, what, deadline_s=30):
    """Metadata reaches every broker a moment after the controller commits; wait for it
    (a bound against hanging, not a timed assertion)."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"still not true after {deadline_s} s: {what}")
        time.sleep(0.2)


def describe(cluster, name):
    (future,) = cluster["admin"].describe_topics(TopicCollection([name])).values()
    return future.result(timeout=10)


def config_of(cluster, name):
    (future,) = cluster["admin"].describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()
    return {k: e.value for k, e in future.result(timeout=10).items()}


def set_config(cluster, name, key, value):
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    for future in cluster["admin"].incremental_alter_configs([resource]).values():
        future.result(timeout=10)


def declared_retention(cluster, name):
    return next(t for t in cluster["document"]["backbone"]["kafka"]["topics"] if t["name"] == name)["config"]["retention.ms"]


@pytest.fixture
def in_sync(cluster):
    proc = topics(cluster, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cluster


# --- the tests (file order matters only for the first one) ----------------------------------

def test_first_apply_creates_the_declared_topics_with_rf_3_and_min_isr_2(cluster):
    assert not set(DECLARED) & existing(cluster), "fresh cluster should not have the topics yet"
    proc, report = topics_json(cluster, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["status"] == "applied" and report["admin_calls"]["writes"] >= 1
    assert {(a["topic"], a["kind"], a["outcome"]) for a in report["actions"]} == {
        ("ingest.events", "create", "done"), ("ingest.metrics", "create", "done")}
    for name, partitions in DECLARED.items():
        wait_for(lambda: name in existing(cluster), f"{name} exists")
        desc = describe(cluster, name)
        assert len(desc.partitions) == partitions
        assert {len(p.replicas) for p in desc.partitions} == {3}
        assert len({r.id for p in desc.partitions for r in p.replicas}) == 3  # spread over all three brokers
        conf = config_of(cluster, name)
        assert conf["min.insync.replicas"] == "2"
        assert conf["retention.ms"] == declared_retention(cluster, name)


def test_second_apply_issues_zero_admin_writes_and_check_passes(in_sync):
    proc, report = topics_json(in_sync, "apply")
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "in_sync" and report["actions"] == []
    assert report["admin_calls"]["writes"] == 0
    assert set(report["admin_calls"]["by_api"]) == {"list_topics", "describe_configs"}
    markdown = topics(in_sync, "apply")
    assert "0 write(s)" in markdown.stdout and "nothing to do" in markdown.stdout
    check = topics(in_sync, "check")
    assert check.returncode == 0, check.stdout
    assert "**In sync**" in check.stdout


def test_out_of_band_retention_change_is_planned_flagged_and_restored(in_sync):
    cluster, declared = in_sync, declared_retention(in_sync, "ingest.metrics")
    set_config(cluster, "ingest.metrics", "retention.ms", "1234567")
    wait_for(lambda: config_of(cluster, "ingest.metrics")["retention.ms"] == "1234567", "out-of-band change visible")

    plan = topics(cluster, "plan")
    assert plan.returncode == 0, plan.stderr
    assert f"| ingest.metrics | config retention.ms | 1234567 → {declared} |" in plan.stdout
    _, plan_json = topics_json(cluster, "plan")
    assert [a["changes"] for a in plan_json["actions"]] == [[{"key": "retention.ms", "old": "1234567", "new": declared}]]

    check = topics(cluster, "check")
    assert check.returncode == 1
    assert f"ingest.metrics: config retention.ms: 1234567 → {declared}" in check.stdout
    result = topics_check(load_contract(Sources(outputs=cluster["outputs"])), 10.0)  # what validate runs
    assert (result.status, result.code) == ("down", "topics_drift")
    assert result.details["differences"] == [f"ingest.metrics: config retention.ms: 1234567 → {declared}"]

    proc, report = topics_json(cluster, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["admin_calls"]["by_api"]["incremental_alter_configs"] == 1
    wait_for(lambda: config_of(cluster, "ingest.metrics")["retention.ms"] == declared, "retention.ms restored")
    assert config_of(cluster, "ingest.metrics")["min.insync.replicas"] == "2"  # only the declared key moved
    assert topics(cluster, "check").returncode == 0
    result = topics_check(load_contract(Sources(outputs=cluster["outputs"])), 10.0)
    assert (result.status, result.code) == ("ok", "ok")


def test_partition_decrease_is_refused_and_nothing_else_changes(in_sync, tmp_path):
    cluster = in_sync
    before = config_of(cluster, "ingest.metrics")["retention.ms"]

    def edit(by_name, listed):
        by_name["ingest.events"]["partitions"] = 3  # has 6: a decrease
        by_name["ingest.metrics"]["config"]["retention.ms"] = "111111111"  # a pending, valid change
        by_name["ingest.metrics"]["partitions"] = 5  # a pending, valid increase
        listed.append({"name": "ingest.refused", "partitions": 2, "replication_factor": 3})  # a pending create
    outputs = variant(cluster, tmp_path, edit)

    proc, report = topics_json(cluster, "apply", outputs=outputs)
    assert proc.returncode == 1
    assert report["status"] == "refused" and report["admin_calls"]["writes"] == 0
    assert any(r.startswith("ingest.events: partitions 6 → 3 refused") for r in report["refused"])
    markdown = topics(cluster, "apply", outputs=outputs)
    assert markdown.returncode == 1 and "nothing was changed" in markdown.stdout + markdown.stderr

    assert len(describe(cluster, "ingest.events").partitions) == 6
    assert len(describe(cluster, "ingest.metrics").partitions) == 3
    assert config_of(cluster, "ingest.metrics")["retention.ms"] == before
    assert "ingest.refused" not in existing(cluster)

    check = topics(cluster, "check", outputs=outputs)
    assert check.returncode == 1 and "ingest.events: ❌ refused: partition decrease: partitions 6 → 3" in check.stdout
    assert topics(cluster, "plan", outputs=outputs).returncode == 1  # a plan apply would refuse


def _committed(consumer) -> bool:
    try:
        consumer.committed([TopicPartition("ingest.events", 0)], timeout=5)
        return True
    except KafkaException:
        return False


def test_undeclared_topic_survives_apply_and_goes_only_with_allow_delete(in_sync):
    cluster, name = in_sync, "scratch.undeclared"
    for future in cluster["admin"].create_topics([NewTopic(name, 2, 1)], operation_timeout=10).values():
        future.result(timeout=15)
    # A group coordinator lookup makes Kafka create its internal __consumer_offsets topic.
    consumer = Consumer({**kafka_client_config(cluster["contract"].kafka, 10, "bridge"),
                         "group.id": "backbone-bridge-topics-test"})
    try:
        # the first lookups answer NOT_COORDINATOR while Kafka is still creating the topic
        wait_for(lambda: _committed(consumer), "the group coordinator answers")
    finally:
        consumer.close()
    wait_for(lambda: {name, "__consumer_offsets"} <= existing(cluster), "undeclared and internal topics exist")

    proc = topics(cluster, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"| {name} | undeclared (kept) |" in proc.stdout and "not drift" in proc.stdout
    check = topics(cluster, "check")
    assert check.returncode == 0 and f"Undeclared topics (not drift): {name}." in check.stdout
    assert name in existing(cluster)

    _, preview = topics_json(cluster, "plan", "--allow-delete")
    assert [(a["topic"], a["kind"]) for a in preview["actions"]] == [(name, "delete")]
    assert "__consumer_offsets" in preview["internal_topics_skipped"]
    assert name in existing(cluster)  # plan changes nothing

    proc, report = topics_json(cluster, "apply", "--allow-delete")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(a["topic"], a["outcome"]) for a in report["actions"]] == [(name, "done")]
    assert report["admin_calls"]["by_api"]["delete_topics"] == 1
    wait_for(lambda: name not in existing(cluster), f"{name} deleted")
    assert {"__consumer_offsets", *DECLARED} <= existing(cluster)
    assert topics(cluster, "check").returncode == 0


def test_unknown_config_key_is_exit_2_naming_topic_and_key(in_sync, tmp_path):
    outputs = variant(in_sync, tmp_path, lambda by_name, _: by_name["ingest.events"]["config"].update(
        {"retention.msec": "1"}))
    for action in ("plan", "apply", "check"):
        proc = topics(in_sync, action, outputs=outputs)
        assert proc.returncode == 2
        assert "kafka.topics[ingest.events].config.retention.msec: unknown topic config key" in proc.stderr
    assert "retention.msec" not in config_of(in_sync, "ingest.events")
