"""Topic planning and rendering, pure: declared specs + observed state -> plan -> text.

The last tests drive `apply_plan` with a fake AdminClient to pin down its write discipline
(nothing is written when the plan or the broker's dry run refuses), and the CLI's bad-input
exits, which happen before any broker is contacted.
"""
import concurrent.futures
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import KafkaError, KafkaException

from backbone.topics.check import topics_check
from backbone.contract import Contract, TopicSpec
from backbone.topics.model import (KNOWN_TOPIC_CONFIGS, AlterConfig, CreateTopic, DeleteTopic, IncreasePartitions,
                             NotEnoughBrokers, ObservedTopic, RefusedDecrease, ReplicationFactorDiffers,
                             TopicConfigError, UndeclaredTopic, plan_topics, validate_declared)
from backbone.topics.admin import CountingAdmin, apply_plan
from backbone.topics.render import check_problems, render_apply, render_check, render_plan
from backbone.contract import KafkaEndpoint

HEADER = {"environment": "test", "bootstrap_servers": "127.0.0.1:9092"}


def spec(name="ingest.events", partitions=6, rf=3, **config):
    return TopicSpec(name=name, partitions=partitions, replication_factor=rf,
                     config={k.replace("_", "."): v for k, v in config.items()})


def seen(name="ingest.events", partitions=6, rfs=(3,), internal=False, **config):
    return ObservedTopic(name, partitions, tuple(rfs), {k.replace("_", "."): v for k, v in config.items()}, internal)


def kinds(plan):
    return [(a.topic, a.kind) for a in plan.actions]


# --- planning ------------------------------------------------------------------------

def test_missing_topic_is_created_with_its_declared_config():
    plan = plan_topics([spec(min_insync_replicas="2")], [], brokers=3)
    (create,) = plan.actions
    assert isinstance(create, CreateTopic)
    assert (create.partitions, create.replication_factor, dict(create.config)) == (6, 3, {"min.insync.replicas": "2"})
    assert plan.status == "drift" and plan.writes == [create] and not plan.blocking


def test_in_sync_topic_plans_nothing():
    plan = plan_topics([spec(retention_ms="1000")], [seen(retention_ms="1000", segment_ms="5")], brokers=3)
    assert plan.actions == () and plan.status == "in_sync" and plan.writes == []


def test_partitions_are_increased_in_place():
    plan = plan_topics([spec(partitions=12)], [seen(partitions=6)], brokers=3)
    assert kinds(plan) == [("ingest.events", "increase_partitions")]
    assert (plan.actions[0].old, plan.actions[0].new) == (6, 12)


def test_config_change_lists_old_and_new_per_declared_key_only():
    plan = plan_topics([spec(retention_ms="604800000", cleanup_policy="compact")],
                       [seen(retention_ms="1000", cleanup_policy="compact", segment_ms="123")], brokers=3)
    (alter,) = plan.actions
    assert isinstance(alter, AlterConfig)
    assert [(c.key, c.old, c.new) for c in alter.changes] == [("retention.ms", "1000", "604800000")]


def test_declared_key_matching_the_brokers_current_value_is_in_sync_whatever_its_source():
    # the observed value here is the broker default (no topic override); it still counts
    plan = plan_topics([spec(cleanup_policy="delete,compact", preallocate="False")],
                       [seen(cleanup_policy="compact,delete", preallocate="false")], brokers=3)
    assert plan.actions == ()


def test_declared_key_the_broker_does_not_report_is_unset_to_new():
    plan = plan_topics([spec(retention_ms="5")], [seen()], brokers=3)
    assert [(c.old, c.new) for c in plan.actions[0].changes] == [(None, "5")]
    assert "retention.ms: (unset) → 5" in plan.actions[0].detail()


def test_replication_factor_difference_is_reported_never_written():
    plan = plan_topics([spec(rf=3)], [seen(rfs=(1,))], brokers=3)
    (rf,) = plan.actions
    assert isinstance(rf, ReplicationFactorDiffers)
    assert rf.drift and not rf.writes and not rf.blocking
    assert "reassignment" in rf.detail()
    assert plan.writes == [] and plan.status == "drift"


def test_partition_decrease_is_refused_and_blocks_the_whole_plan():
    plan = plan_topics([spec(partitions=3), spec("ingest.metrics", retention_ms="1")],
                       [seen(partitions=6), seen("ingest.metrics", retention_ms="2")], brokers=3)
    refused = plan.of(RefusedDecrease)
    assert [(a.topic, a.observed, a.declared) for a in refused] == [("ingest.events", 6, 3)]
    assert plan.blocking == refused and plan.status == "blocked"
    assert (plan.exit_code, plan.drift_exit_code) == (1, 1)  # the plan owns the exit codes of plan and check
    assert plan.of(AlterConfig)  # the other change is still planned, so the report shows it
    assert "cannot remove partitions" in refused[0].detail()


def test_undeclared_topics_are_kept_and_are_not_drift():
    plan = plan_topics([spec()], [seen(), seen("legacy.orders", partitions=2)], brokers=3)
    assert kinds(plan) == [("legacy.orders", "undeclared")]
    assert plan.drift == [] and plan.writes == [] and plan.status == "in_sync"
    assert (plan.exit_code, plan.drift_exit_code) == (0, 0)


def test_allow_delete_deletes_undeclared_but_never_internal_topics():
    observed = [seen(), seen("legacy.orders"), seen("__consumer_offsets", partitions=50),
                seen("__transaction_state"), seen("marked.internal", internal=True)]
    for allow in (False, True):
        plan = plan_topics([spec()], observed, brokers=3, allow_delete=allow)
        touched = {a.topic for a in plan.actions}
        assert touched == {"legacy.orders"}
        assert plan.internal_skipped == ("__consumer_offsets", "__transaction_state", "marked.internal")
        assert isinstance(plan.actions[0], DeleteTopic if allow else UndeclaredTopic)


def test_replication_factor_above_live_brokers_blocks_a_create():
    plan = plan_topics([spec(rf=3)], [], brokers=2)
    assert kinds(plan) == [("ingest.events", "not_enough_brokers"), ("ingest.events", "create")]
    assert plan.status == "blocked" and isinstance(plan.blocking[0], NotEnoughBrokers)


def test_replication_factor_above_live_brokers_blocks_a_partition_increase():
    plan = plan_topics([spec(rf=3, partitions=8)], [seen(partitions=6)], brokers=2)
    assert plan.status == "blocked" and plan.of(IncreasePartitions)


def test_in_sync_topic_with_a_broker_down_is_not_drift():
    # one broker of three down is the kafka probe's "degraded"; the topics themselves match
    plan = plan_topics([spec(rf=3, retention_ms="1")], [seen(retention_ms="1")], brokers=2)
    assert plan.actions == () and plan.status == "in_sync"


# --- validation before any broker contact ------------------------------------------------

def test_unknown_config_key_names_the_topic_the_key_and_a_suggestion():
    with pytest.raises(TopicConfigError) as caught:
        validate_declared([spec("ingest.metrics", retention_msec="1")])
    assert caught.value.problems == [
        "kafka.topics[ingest.metrics].config.retention.msec: unknown topic config key (did you mean retention.ms?)"]


def test_plan_topics_itself_refuses_unknown_keys():
    with pytest.raises(TopicConfigError):
        plan_topics([spec(segmnt_ms="1")], [], brokers=3)


def test_keys_removed_in_kafka_4_are_rejected_with_the_reason():
    with pytest.raises(TopicConfigError, match=r"message.downconversion.enable: removed in Kafka 4.0"):
        validate_declared([spec(message_downconversion_enable="true")])


def test_every_known_key_is_accepted():
    validate_declared([TopicSpec(name="t", replication_factor=3,
                                 config={k: "2" if k == "min.insync.replicas" else "x" for k in KNOWN_TOPIC_CONFIGS})])


def test_replication_factor_above_expected_brokers_is_bad_config():
    with pytest.raises(TopicConfigError, match=r"replication_factor: 3 exceeds kafka.expected_brokers 1"):
        validate_declared([spec(rf=3)], expected_brokers=1)
    validate_declared([spec(rf=3)], expected_brokers=3)


def test_min_insync_replicas_above_replication_factor_is_bad_config():
    with pytest.raises(TopicConfigError, match=r"min.insync.replicas: 3 exceeds replication factor 2"):
        validate_declared([spec(rf=2, min_insync_replicas="3")])


def test_every_problem_is_reported_at_once():
    with pytest.raises(TopicConfigError) as caught:
        validate_declared([spec("a", retention_msec="1"), spec("b", rf=5)], expected_brokers=3)
    assert len(caught.value.problems) == 2


# --- rendering -----------------------------------------------------------------------

def mixed_plan(allow_delete=False):
    return plan_topics(
        [spec("a.new", partitions=2, rf=1), spec("b.grow", partitions=4, rf=1),
         spec("c.conf", rf=1, retention_ms="10", segment_ms="20"), spec("d.rf", rf=3)],
        [seen("b.grow", partitions=2, rfs=(1,)), seen("c.conf", rfs=(1,), retention_ms="1", segment_ms="20"),
         seen("d.rf", rfs=(1,)), seen("e.extra"), seen("__consumer_offsets")], brokers=3, allow_delete=allow_delete)


def test_markdown_plan_has_one_row_per_change_with_old_and_new():
    text = render_plan(mixed_plan(), "markdown", HEADER)
    assert "| a.new | create | 2 partitions, replication factor 1 |" in text
    assert "| b.grow | increase partitions | partitions 2 → 4" in text
    assert "| c.conf | config retention.ms | 1 → 10 |" in text
    assert "segment.ms" not in text  # unchanged keys are not listed
    assert "| d.rf | replication factor (report only) |" in text
    assert "| e.extra | undeclared (kept) |" in text and "not drift" in text
    assert "Internal topics are never touched: __consumer_offsets." in text


def test_json_plan_carries_every_action_and_summary():
    data = json.loads(render_plan(mixed_plan(allow_delete=True), "json", HEADER))
    assert data["command"] == "topics plan" and data["environment"] == "test"
    assert [(a["topic"], a["kind"]) for a in data["actions"]] == [
        ("a.new", "create"), ("b.grow", "increase_partitions"), ("c.conf", "alter_config"),
        ("d.rf", "replication_factor"), ("e.extra", "delete")]
    assert data["actions"][2]["changes"] == [{"key": "retention.ms", "old": "1", "new": "10"}]
    assert data["summary"] == {"writes": 4, "drift": 4, "blocking": 0, "undeclared": 1}


def test_check_names_each_difference_and_not_undeclared_topics():
    problems = check_problems(mixed_plan())
    assert "c.conf: config retention.ms: 1 → 10" in problems
    assert len(problems) == 4 and not any("e.extra" in p for p in problems)
    text = render_check(mixed_plan(), "markdown", HEADER)
    assert "**Drift: 4 difference(s)**" in text and "Undeclared topics (not drift): e.extra." in text
    in_sync = plan_topics([spec()], [seen(), seen("e.extra")], brokers=3)
    data = json.loads(render_check(in_sync, "json", HEADER))
    assert data["in_sync"] is True and data["exit_code"] == 0 and data["differences"] == []


def test_pipes_in_values_do_not_break_the_markdown_table():
    plan = plan_topics([spec(compression_type="a|b")], [seen(compression_type="zstd")], brokers=3)
    assert "zstd → a\\|b" in render_plan(plan, "markdown", HEADER)


# --- apply against a fake AdminClient ------------------------------------------------------

def _future(error=None):
    f = concurrent.futures.Future()
    if error:
        f.set_exception(KafkaException(KafkaError(KafkaError.INVALID_CONFIG, error)))
    else:
        f.set_result(None)
    return f


class FakeAdmin:
    """Answers the write APIs; `reject` maps topic -> broker error for validate_only calls."""

    def __init__(self, reject=None):
        self.reject = reject or {}
        self.sent = []

    def _answer(self, api, names, validate_only):
        self.sent.append((api, validate_only, tuple(names)))
        return {n: _future(self.reject.get(n) if validate_only else None) for n in names}

    def create_topics(self, topics, validate_only=False, **kw):
        return self._answer("create_topics", [t.topic for t in topics], validate_only)

    def create_partitions(self, parts, validate_only=False, **kw):
        return self._answer("create_partitions", [p.topic for p in parts], validate_only)

    def incremental_alter_configs(self, resources, validate_only=False, **kw):
        answers = self._answer("incremental_alter_configs", [r.name for r in resources], validate_only)
        return {r: answers[r.name] for r in resources}

    def delete_topics(self, names, **kw):
        return self._answer("delete_topics", names, False)


def counting(fake):
    return CountingAdmin(KafkaEndpoint(), 1.0, admin=fake)


def test_apply_writes_each_kind_once_after_a_dry_run_and_counts_calls():
    fake = FakeAdmin()
    outcome = apply_plan(counting(fake), mixed_plan(allow_delete=True))
    assert [(api, vo) for api, vo, _ in fake.sent] == [
        ("create_topics", True), ("create_partitions", True), ("incremental_alter_configs", True),
        ("create_topics", False), ("create_partitions", False), ("incremental_alter_configs", False),
        ("delete_topics", False)]
    assert outcome.writes == 4 and outcome.reads == 3 and outcome.status == "applied"
    assert {r.action.topic: r.outcome for r in outcome.results} == {
        "a.new": "done", "b.grow": "done", "c.conf": "done", "d.rf": "reported", "e.extra": "done"}
    text = render_apply(outcome, "markdown", HEADER)
    assert "Admin calls: 3 read(s)" in text and "4 write(s) (create_partitions 1, create_topics 1," in text


def test_a_blocked_plan_sends_nothing_at_all():
    plan = plan_topics([spec(partitions=3), spec("x.new", rf=1)], [seen(partitions=6)], brokers=3)
    fake = FakeAdmin()
    outcome = apply_plan(counting(fake), plan)
    assert fake.sent == [] and outcome.writes == 0 and outcome.status == "refused" and outcome.exit_code == 1
    assert outcome.refused[0].startswith("ingest.events: partitions 6 → 3 refused")
    assert {r.outcome for r in outcome.results} == {"refused"}


def test_a_broker_rejection_in_the_dry_run_stops_every_write():
    fake = FakeAdmin(reject={"c.conf": "Invalid value x for configuration retention.ms"})
    outcome = apply_plan(counting(fake), mixed_plan(allow_delete=True))
    assert all(vo for _, vo, _ in fake.sent), "a real write was sent after the dry run failed"
    assert outcome.writes == 0 and outcome.status == "refused"
    assert "c.conf: incremental_alter_configs rejected by the broker: Invalid value x" in outcome.refused[0]
    data = json.loads(render_apply(outcome, "json", HEADER))
    assert data["admin_calls"]["writes"] == 0 and data["exit_code"] == 1


def test_nothing_to_do_issues_no_write():
    fake = FakeAdmin()
    outcome = apply_plan(counting(fake), plan_topics([spec()], [seen()], brokers=3))
    assert fake.sent == [] and outcome.status == "in_sync" and outcome.exit_code == 0


# --- CLI: bad input exits 2 before any broker is contacted -----------------------------------

def run_cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    return subprocess.run([sys.executable, "-m", "backbone", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def contract_with(topics, brokers=3):
    # port 1: nothing listens, so reaching the broker would fail with exit 1, not 2
    return {"contract_version": 1, "tier": "institutional", "platform": "local",
            "timescale": {"password": "PLANTED-secret-ts-41"}, "redis": {},
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "expected_brokers": brokers, "topics": topics}}


@pytest.mark.parametrize("topics, needle", [
    ([{"name": "ingest.metrics", "replication_factor": 3, "config": {"retention.msec": "1"}}],
     "kafka.topics[ingest.metrics].config.retention.msec: unknown topic config key (did you mean retention.ms?)"),
    ([{"name": "ingest.events", "replication_factor": 4}],
     "kafka.topics[ingest.events].replication_factor: 4 exceeds kafka.expected_brokers 3"),
])
@pytest.mark.parametrize("action", ["plan", "apply", "check"])
def test_bad_topic_declarations_exit_2_without_contacting_the_broker(tmp_path, topics, needle, action):
    (tmp_path / "outputs.json").write_text(json.dumps(contract_with(topics)))
    proc = run_cli("topics", action, "--outputs", "outputs.json", "--timeout", "30", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""
    assert "PLANTED" not in proc.stderr


def test_topics_on_the_bootstrap_tier_is_bad_input(tmp_path):
    proc = run_cli("topics", "plan", cwd=tmp_path)
    assert proc.returncode == 2 and "has no Kafka" in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_kafka_is_exit_1_without_traceback(tmp_path):
    (tmp_path / "outputs.json").write_text(json.dumps(contract_with([{"name": "t", "replication_factor": 1}])))
    proc = run_cli("topics", "check", "--outputs", "outputs.json", "--timeout", "1", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "did not answer" in proc.stderr and "Traceback" not in proc.stderr and "PLANTED" not in proc.stderr


def test_topics_check_without_kafka_is_not_applicable_and_invalid_topics_are_down():
    assert topics_check(Contract(), 1.0).code == "not_applicable"
    contract = Contract.model_validate(contract_with([{"name": "t", "replication_factor": 1,
                                                       "config": {"retention.msec": "1"}}]))
    result = topics_check(contract, 30.0)  # port 1 would fail otherwise: nothing was contacted
    assert (result.status, result.code) == ("down", "topics_invalid")
    assert "kafka.topics[t].config.retention.msec" in result.message
