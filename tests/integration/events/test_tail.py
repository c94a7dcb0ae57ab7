"""`backbone events tail` without `--group` is a look at the stream: it starts at the bridge
group's position and moves nothing, on the bootstrap event log and on real Kafka. With
`--group` it consumes as that group and commits."""
import json
import sqlite3
import uuid

from confluent_kafka import Consumer, TopicPartition

from backbone.clients.kafka import kafka_client_config
from backbone.events.relay import events_topic

from ..conftest import run_backbone
from ..data.test_data_checks import contract_of, outputs_with, scratch  # noqa: F401 (a fixture)

BRIDGE = "backbone-bridge"


def events_of(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_bootstrap_tail_without_group_leaves_the_bridge_position_alone(tmp_path):
    assert run_backbone("migrate", "apply", cwd=tmp_path).returncode == 0
    assert run_backbone("ingest", "--dimension", "bars", "--generate", "60", "--symbols", "4", cwd=tmp_path).returncode == 0
    bridge = events_of(run_backbone("events", "tail", "--group", BRIDGE, "--max", "2", "--format", "json", cwd=tmp_path))
    store = tmp_path / ".backbone" / "bootstrap" / "backbone.db"

    def positions():
        with sqlite3.connect(store) as conn:
            return conn.execute("SELECT group_id, position, updated_at FROM consumer_positions").fetchall()
    before = positions()
    assert [(g, p) for g, p, _ in before] == [(BRIDGE, bridge[-1]["offset"] + 1)]

    look = events_of(run_backbone("events", "tail", "--max", "2", "--format", "json", cwd=tmp_path))
    assert [e["offset"] for e in look] == [bridge[-1]["offset"] + 1, bridge[-1]["offset"] + 2]  # from its position
    everything = events_of(run_backbone("events", "tail", "--from-beginning", "--max", "4", "--format", "json",
                                        cwd=tmp_path))
    assert [e["offset"] for e in everything] == [e["offset"] for e in bridge + look]
    assert positions() == before  # no position written, not even the same one again

    rest = events_of(run_backbone("events", "tail", "--group", BRIDGE, "--max", "2", "--format", "json", cwd=tmp_path))
    assert [e["id"] for e in rest] == [e["id"] for e in look]  # the bridge skipped nothing


def committed(contract, group: str) -> dict[int, int]:
    topic = events_topic(contract)
    consumer = Consumer({**kafka_client_config(contract.kafka, 10, "bridge"), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {tp.partition: tp.offset
                for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)}
    finally:
        consumer.close()


def test_kafka_tail_without_group_commits_nothing_for_the_bridge_group(local_env, scratch, tmp_path):  # noqa: F811
    name, _ = scratch
    group = "backbone-bridge-test-" + uuid.uuid4().hex[:8]
    outputs = outputs_with(local_env, tmp_path, database=name, data={"consumer_group": group})
    src = ("--outputs", str(outputs))
    assert run_backbone("ingest", "--dimension", "trades", "--generate", "40", "--symbols", "4", *src).returncode == 0
    assert run_backbone("events", "relay", *src).returncode == 0
    events_of(run_backbone("events", "tail", "--group", group, "--max", "2", "--format", "json", *src))
    before = committed(contract_of(outputs), group)
    assert any(offset >= 0 for offset in before.values()), before  # the bridge group has a position

    # the 2 events the group has not handled (the idle timeout only bounds a failure)
    look = events_of(run_backbone("events", "tail", "--max", "2", "--idle-timeout", "30", "--format", "json", *src))
    assert len(look) == 2
    assert all(e["offset"] >= before[e["partition"]] for e in look)  # from the group's position on
    assert committed(contract_of(outputs), group) == before
