"""The Kafka backup / restore drill against the session's real 3-broker KRaft cluster: a
drill-owned declared topic with known records (keys, null keys and values, headers, explicit
partitions and timestamps, a low watermark moved by delete_records) and two consumer groups
is exported, restored into a scratch single-node Kafka, and compared; then a tampered, aged
copy of that backup is restored and must be reported, not passed."""
import json
import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from backbone.clients.kafka import kafka_client_config
from backbone.contract import Contract, merge_outputs
from backbone.drills.backup import BackupDrillError
from backbone.drills.backup_kafka import kafka_backup_drill, to_markdown
from backbone.drills.backup_kafka_io import Deadline, Digest, alter_offsets, encode_body

CONFIG = {"min.insync.replicas": "2", "retention.ms": "86400000", "max.message.bytes": "2000000"}
COUNTS = {0: 40, 1: 25, 2: 0}  # partition 2 stays empty
TRIMMED = 5                    # delete_records moves partition 1's low watermark here
COMMITS = {"a": {0: 10, 1: 12}, "b": {1: 3}}  # b's offset is below the low watermark
T0 = int(time.time() * 1000) - 3_600_000       # recent: retention (1 day) must not delete them meanwhile


def record(p: int, i: int) -> dict:
    return {"key": None if i % 7 == 0 else f"key-{p}-{i}".encode(),
            "value": None if i == 3 else f"value-{p}-{i:03d}".encode() * 3,
            "headers": [("trace", f"{p}.{i}".encode()), ("trace", None), ("ü", b"\x00\xff")] if i % 2 else None,
            "timestamp": T0 + p * 1000 + i}


def expected_digest(p: int, start: int = 0) -> Digest:
    digest = Digest()
    for i in range(start, COUNTS[p]):
        r = record(p, i)
        digest.add(1, r["timestamp"], encode_body(r["key"], r["value"], r["headers"]))
    return digest


@pytest.fixture(scope="module")
def source(local_env):
    """A contract declaring a drill-owned topic, which holds the known records and offsets."""
    topic = "drill.backup." + uuid.uuid4().hex[:8]
    doc = merge_outputs(json.loads(local_env["outputs"].read_text()))
    doc["kafka"] = {**doc["kafka"], "topics": [*doc["kafka"]["topics"], {
        "name": topic, "partitions": 3, "replication_factor": 3, "config": CONFIG}]}
    contract = Contract.model_validate(doc)
    conf = kafka_client_config(contract.kafka, 10, "drills")  # a drill-owned topic
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 3, 3, config=CONFIG)])[topic].result(timeout=30)
    producer = Producer(conf | {"acks": "all", "enable.idempotence": True})
    for p, n in COUNTS.items():
        for i in range(n):
            r = record(p, i)
            producer.produce(topic, r["value"], r["key"], partition=p, timestamp=r["timestamp"], headers=r["headers"])
    assert producer.flush(30) == 0
    admin.delete_records([TopicPartition(topic, 1, TRIMMED)])[TopicPartition(topic, 1, TRIMMED)].result(timeout=30)
    for group, offsets in COMMITS.items():
        alter_offsets(admin, f"{topic}.{group}", [TopicPartition(topic, p, o) for p, o in offsets.items()],
                      Deadline(60))
    return {"contract": contract, "topic": topic}


@pytest.fixture(scope="module")
def drill(source, tmp_path_factory):
    """One drill run, shared: export the drill topic only, restore, compare."""
    work = tmp_path_factory.mktemp("kafka-backup")
    messages = []
    result = kafka_backup_drill(source["contract"], work, topics=[source["topic"]], progress=messages.append)
    return {"result": result, "work": work, "progress": messages}


def port_free(port: int) -> bool:
    """Nothing listens there any more (connections the broker closed may linger in
    TIME_WAIT, which SO_REUSEADDR lets a new listener ignore, as Kafka's own does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def assert_scratch_gone(scratch: dict) -> None:
    assert scratch["removed"] and not Path(scratch["dir"]).exists()
    assert not Path(f"/proc/{scratch['pid']}").exists() or \
        str(scratch["dir"]) not in Path(f"/proc/{scratch['pid']}/cmdline").read_bytes().decode(errors="replace")
    assert port_free(scratch["port"]) and port_free(scratch["controller_port"])


def processes_under(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def test_export_restores_with_equal_records_configs_and_offsets(source, drill):
    result, topic = drill["result"], source["topic"]
    assert result.passed and result.ok and result.rto_met and result.rpo_met, to_markdown(result)
    assert result.backup_taken and result.backup_dir.parent == drill["work"] and result.export_s > 0
    assert list(result.topics) == [topic]  # the session's other declared topics were left alone

    t = result.topics[topic]
    assert t.partitions == (3, 3) and t.replication_factor == (3, 1)
    assert t.configs == {"max.message.bytes": ("2000000", "2000000"), "retention.ms": ("86400000", "86400000")}

    for p, n in COUNTS.items():
        check = result.partitions[topic][p]
        want = expected_digest(p, TRIMMED if p == 1 else 0)  # what the source still retains
        assert check.source_count == check.file_count == check.restored_count == want.count
        assert check.source_sha256 == check.file_sha256 == check.restored_sha256 == want.hexdigest
    assert result.records == 40 + 20

    # committed offsets, translated: restored offset = backed-up records before the committed one
    assert result.groups == {f"{topic}.a": {f"{topic}[0]": (10, 10, 10), f"{topic}[1]": (12, 7, 7)},
                             f"{topic}.b": {f"{topic}[1]": (3, 0, 0)}}
    assert any("min.insync.replicas 2 capped to 1" in n for n in result.notes)
    assert any(f"{topic}.b committed {topic}[1] offset 3, before the first retained record" in n for n in result.notes)

    assert set(result.phases) == {"cluster_start", "topics", "replay", "offsets", "verify"}
    assert result.restore_s == pytest.approx(sum(v for k, v in result.phases.items() if k != "verify"))
    assert 0 <= result.backup_age_s < result.objectives["rpo_s"]
    assert_scratch_gone(result.scratch)
    assert any("scratch Kafka ready" in m for m in drill["progress"])


def test_backup_directory_is_private_and_complete(source, drill):
    backup = drill["result"].backup_dir
    assert {p.name for p in backup.iterdir()} == {"manifest.json", "topics.json", "groups.json", "records"}
    assert backup.stat().st_mode & 0o777 == 0o700
    files = [p for p in backup.rglob("*") if p.is_file()]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    manifest = json.loads((backup / "manifest.json").read_text())
    parts = manifest["records"][source["topic"]]
    assert parts["1"]["low"] == TRIMMED and parts["1"]["first_offset"] == TRIMMED and parts["2"]["count"] == 0
    groups = json.loads((backup / "groups.json").read_text())
    assert set(groups) == {f"{source['topic']}.a", f"{source['topic']}.b"}


def test_report_shapes(source, drill):
    result, topic = drill["result"], source["topic"]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["service"] == "kafka" and data["passed"] and data["records"] == 60
    assert data["partitions"][topic]["1"]["match"] and data["partitions"][topic]["1"]["restored_count"] == 20
    assert data["groups"][f"{topic}.a"][f"{topic}[1]"] == {"source_offset": 12, "expected_offset": 7,
                                                           "restored_offset": 7, "match": True}
    markdown = to_markdown(result)
    assert markdown == result.to_markdown()
    assert "✅ restore verified" in markdown and "RPO: backup age" in markdown and "RTO: restore time" in markdown
    assert f"| {topic}[0] | 40 | 40 |" in markdown and "cluster start" in markdown


def test_tampered_aged_backup_is_reported_not_passed(source, drill, tmp_path):
    """A byte changed in partition 0's file, partition 1's file cut short, and an export time
    older than the RPO: the drill restores what it can and says what differs."""
    topic = source["topic"]
    copy = tmp_path / "copy"
    shutil.copytree(drill["result"].backup_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    rpo = source["contract"].objectives.kafka.rpo_s
    manifest["exported_at"] = time.time() - rpo - 120
    (copy / "manifest.json").write_text(json.dumps(manifest))
    p0 = copy / "records" / topic / "0.bin"
    data = p0.read_bytes()
    assert data.count(b"value-0-017") == 3
    p0.write_bytes(data.replace(b"value-0-017", b"value-0-X17", 1))
    p1 = copy / "records" / topic / "1.bin"
    p1.write_bytes(p1.read_bytes()[:-3])

    work = tmp_path / "work"
    result = kafka_backup_drill(source["contract"], work, backup=copy)
    assert not result.passed and not result.ok and not result.rpo_met
    assert not result.backup_taken and result.backup_age_s > rpo

    c0, c1, c2 = (result.partitions[topic][p] for p in range(3))
    assert c0.source_count == c0.restored_count == 40 and c0.source_sha256 != c0.restored_sha256 and not c0.match
    assert c1.damage.startswith("truncated at byte") and c1.restored_count == 19 and not c1.match
    assert c2.match
    assert any(f"{topic}[0]: the backup's record file does not match its manifest" in n for n in result.notes)
    assert any(f"{topic}[1]: the backup's record file is truncated" in n and "19 of 20 records" in n
               for n in result.notes)
    markdown = result.to_markdown()
    assert "❌ restore drill failed" in markdown and "Traceback" not in markdown
    assert_scratch_gone(result.scratch)
    assert not list(work.iterdir())  # the scratch cluster's directory is gone


def test_a_timeout_stops_and_removes_the_scratch_cluster(source, drill, tmp_path):
    work = tmp_path / "work"
    # 1 s: out of time while the scratch broker starts (or, on a fast machine, just after)
    with pytest.raises(BackupDrillError, match="out of time|scratch Kafka did not start") as caught:
        kafka_backup_drill(source["contract"], work, backup=drill["result"].backup_dir, timeout_s=1)
    assert "Traceback" not in str(caught.value)
    assert not list(work.iterdir()) and not processes_under(work)


def test_bad_requests_are_refused_before_anything_starts(source, tmp_path):
    contract = source["contract"]
    with pytest.raises(BackupDrillError, match="not declared in the contract's kafka.topics: nope"):
        kafka_backup_drill(contract, tmp_path, topics=["nope"])
    with pytest.raises(BackupDrillError, match="holds no manifest.json"):
        kafka_backup_drill(contract, tmp_path, backup=tmp_path)
    assert not list(tmp_path.iterdir())


def test_credentials_never_reach_the_error(source, tmp_path):
    doc = source["contract"].model_dump(mode="json")
    secret = "kafka-" + uuid.uuid4().hex
    doc["kafka"] |= {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "drill",
                     "sasl_password": secret}
    contract = Contract.model_validate(doc)
    with pytest.raises(BackupDrillError) as caught:
        kafka_backup_drill(contract, tmp_path, topics=[source["topic"]], timeout_s=3)
    assert secret not in str(caught.value) and "Traceback" not in str(caught.value)
    assert not list(tmp_path.iterdir())  # the partial export was removed
