"""The Kafka backup drill's backup directory: how it is exported from a cluster, read back,
and how its record files are written, replayed and digested.

    manifest.json   format, export time, per partition: watermarks, count, sha256 (written last:
                    a directory without one is an export that did not finish)
    topics.json     per topic: partitions, replication factor, the configs set on the topic
    groups.json     per consumer group: its committed offsets on the exported topics
    records/<topic>/<partition>.bin   the partition's retained records, in offset order

A record file is a stream of frames:

    frame = source offset (int64) | timestamp type (int8) | timestamp ms (int64) | body length (uint32) | body
    body  = key | value | header count (int32) | (name | value) per header
    where a key, value, name or header value = length (int32, -1 for null) | bytes

A partition's checksum is sha256 over, per record, the timestamp (CreateTime only: a
LogAppendTime is the broker's, so a replay cannot keep it) and the body; never the offset,
which a restore renumbers. The export, the file and the restored copy are digested the same
way. Everything streams: a batch of at most 1000 records in memory, plus librdkafka's bounded
queues.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import struct
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from confluent_kafka import (TIMESTAMP_CREATE_TIME, Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

from ..clients import kafka as kafka_client
from ..clients.kafka import kafka_text
from ..contract import KafkaEndpoint
from .backup import BackupDrillError

FORMAT = "backbone-kafka-backup/1"
_FRAME = struct.Struct(">qbqI")
_LEN = struct.Struct(">i")
_TS = struct.Struct(">q")
_MAX_BODY = 1 << 30  # Kafka caps a record far below this: a larger length is a damaged file
_BATCH = 64          # partitions read at once: open files and their buffers stay bounded
# Bounded memory: at most this much prefetched (consumer) or queued (producer) data.
CONSUMER_SETTINGS = {"enable.auto.commit": False, "enable.auto.offset.store": False, "enable.partition.eof": True,
                     "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                     "queued.max.messages.kbytes": 16384, "fetch.wait.max.ms": 100}  # a partition's end: seen sooner
PRODUCER_SETTINGS = {"acks": "all", "enable.idempotence": True, "linger.ms": 20, "queue.buffering.max.kbytes": 65536}
# Group coordinators move and load after a cluster starts; librdkafka does not flag these
# per-partition answers retriable, yet the next call (a fresh coordinator lookup) succeeds.
# So do partition leaders right after topics are created (a cluster with many declared
# topics elects them over a few seconds).
_COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                       KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION,
                       KafkaError.LEADER_NOT_AVAILABLE}


class CorruptBackup(Exception):
    """A record file that cannot be parsed past some byte."""


class Deadline:
    """The drill's time budget: every wait is bounded by what is left of it."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s
        self.client_s = min(30.0, timeout_s)  # clients' socket timeouts: not shrunk as time passes

    def left(self, cap: float = 30.0, what: str = "the Kafka backup drill") -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise BackupDrillError(f"{what}: out of time (the drill's timeout is {self.timeout_s:g} s)")
        return round(max(0.1, min(cap, remaining)), 1)


def retrying(call: Callable[[], Any], deadline: Deadline) -> Any:
    """`call()`, again while Kafka answers with a retriable error and time is left."""
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not isinstance(err, KafkaError) or not (err.retriable() or err.code() in _COORDINATOR_MOVING) \
                    or time.monotonic() > deadline.end - 1:
                raise
            time.sleep(0.5)


def _raise_partition_errors(tps: list[TopicPartition] | None) -> list[TopicPartition]:
    for tp in tps or []:
        if tp.error is not None:
            raise KafkaException(tp.error)
    return tps or []


def alter_offsets(admin: AdminClient, group: str, offsets: list[TopicPartition], deadline: Deadline) -> None:
    """Commit `offsets` for `group` (a call that succeeds can still carry per-partition errors)."""
    retrying(lambda: _raise_partition_errors(admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, offsets)], request_timeout=deadline.left())[group].result(
        timeout=deadline.left()).topic_partitions), deadline)


def committed(admin: AdminClient, group: str, deadline: Deadline) -> list[TopicPartition]:
    """Every offset `group` has committed."""
    return retrying(lambda: _raise_partition_errors(admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=deadline.left())[group].result(
        timeout=deadline.left()).topic_partitions), deadline)


def private_file(path: Path, mode: str = "wb"):
    """A new file readable by its owner only: a backup is the data."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), mode, buffering=1 << 18)


# --- records --------------------------------------------------------------------------------

def _field(data: bytes | str | None) -> bytes:
    if data is None:
        return _LEN.pack(-1)
    data = data.encode() if isinstance(data, str) else data
    return _LEN.pack(len(data)) + data


def encode_body(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]] | None) -> bytes:
    headers = headers or []
    return b"".join([_field(key), _field(value), _LEN.pack(len(headers)),
                     *(_field(name) + _field(v) for name, v in headers)])


def decode_body(body: bytes) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    pos = 0

    def length(what: str) -> int:
        nonlocal pos
        if pos + 4 > len(body):
            raise CorruptBackup(f"a record's {what} is cut short")
        pos += 4
        return _LEN.unpack_from(body, pos - 4)[0]

    def take(what: str) -> bytes | None:
        nonlocal pos
        n = length(what)
        if n == -1:
            return None
        if n < 0 or pos + n > len(body):
            raise CorruptBackup(f"a record's {what} has an impossible length")
        pos += n
        return body[pos - n:pos]

    key, value, headers = take("key"), take("value"), []
    for _ in range(length("header count")):  # a negative count: no headers, then trailing bytes below
        name = take("header name")
        if name is None:
            raise CorruptBackup("a record has a header without a name")
        headers.append((name.decode(errors="replace"), take("header value")))
    if pos != len(body):
        raise CorruptBackup("a record has bytes its fields do not account for")
    return key, value, headers


class Digest:
    """Count and sha256 of a partition's records, in offset order."""

    def __init__(self) -> None:
        self.count = 0
        self._sha = hashlib.sha256()

    def add(self, ts_type: int, ts: int, body: bytes) -> None:
        self._sha.update(_TS.pack(ts if ts_type == TIMESTAMP_CREATE_TIME else -1))
        self._sha.update(body)
        self.count += 1

    @property
    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def frames(path: Path) -> Iterator[tuple[int, int, int, bytes]]:
    """(source offset, timestamp type, timestamp, body) per record of a file."""
    with open(path, "rb", buffering=1 << 18) as f:
        pos = 0
        while head := f.read(_FRAME.size):
            if len(head) < _FRAME.size:
                raise CorruptBackup(f"truncated at byte {pos} (a record header is cut short)")
            offset, ts_type, ts, size = _FRAME.unpack(head)
            if size > _MAX_BODY:
                raise CorruptBackup(f"damaged at byte {pos} (a record claims {size} bytes)")
            body = f.read(size)
            if len(body) < size:
                raise CorruptBackup(f"truncated at byte {pos} (a record is cut short)")
            yield offset, ts_type, ts, body
            pos += _FRAME.size + size


def read_partitions(consumer: Consumer, topic: str, partitions: int, deadline: Deadline,
                    out_dir: Path | None = None, progress: Callable[[str], None] = lambda text: None
                    ) -> dict[int, dict[str, Any]]:
    """Digest every retained record of `topic` between each partition's watermarks (read
    first: the copy stops there even while producers keep appending), in offset order;
    with `out_dir`, also write each partition's records to its file there. Returns per
    partition: low, high, first_offset, count, sha256."""
    out: dict[int, dict[str, Any]] = {}
    seen, last_report = 0, time.monotonic()
    for start in range(0, partitions, _BATCH):
        bounds = {p: retrying(lambda p=p: consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                                          timeout=deadline.left(), cached=False),
                              deadline)
                  for p in range(start, min(partitions, start + _BATCH))}
        digests = {p: Digest() for p in bounds}
        first: dict[int, int] = {}
        files = {p: private_file(out_dir / f"{p}.bin") for p in bounds} if out_dir is not None else {}
        pending = {p: high for p, (low, high) in bounds.items() if high > low}
        try:
            if pending:
                consumer.assign([TopicPartition(topic, p, bounds[p][0]) for p in pending])
            while pending:
                deadline.left(what=f"reading {topic}")
                for msg in consumer.consume(num_messages=1000, timeout=0.1):  # returns early only when full
                    p, err = msg.partition(), msg.error()
                    if p not in pending:
                        continue
                    if err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET:
                        continue  # retention deleted records under the reader: it reads on from the new start
                    if err is not None and err.code() != KafkaError._PARTITION_EOF:
                        raise BackupDrillError(f"reading {topic}[{p}] failed: {err.str()}")
                    # the end event also ends a partition whose last offsets are transaction markers
                    if err is None and msg.offset() < pending[p]:
                        ts_type, ts = msg.timestamp()
                        body = encode_body(msg.key(), msg.value(), msg.headers())
                        if p in files:
                            files[p].write(_FRAME.pack(msg.offset(), ts_type, ts, len(body)) + body)
                        digests[p].add(ts_type, ts, body)
                        first.setdefault(p, msg.offset())
                        seen += 1
                    if err is not None or msg.offset() >= pending[p] - 1:
                        del pending[p]
                        consumer.pause([TopicPartition(topic, p)])  # nothing more wanted from it
                if time.monotonic() - last_report > 5:
                    last_report = time.monotonic()
                    progress(f"{topic}: {seen} records so far")
            consumer.unassign()
        finally:
            for f in files.values():
                f.close()
        out |= {p: {"low": low, "high": high, "first_offset": first.get(p), "count": digests[p].count,
                    "sha256": digests[p].hexdigest} for p, (low, high) in bounds.items()}
    return out


def replay_partition(producer: Producer, topic: str, partition: int, path: Path, commits: list[int],
                     deadline: Deadline, failures: list[str]) -> tuple[Digest, dict[int, int], str | None]:
    """Produce a partition file's records to the same partition, keys, values, headers and
    CreateTime kept. Returns the file's digest, each committed source offset translated into
    the restored numbering (the count of exported records before it: exact even across gaps
    left by retention, compaction or transaction markers), and the damage found, if any."""
    digest, pending, translated = Digest(), sorted(set(commits)), {}

    def delivered(err: Any, msg: Any) -> None:
        if err is not None and len(failures) < 5:
            failures.append(f"{topic}[{partition}]: {err.str()}")

    try:
        if not path.is_file():
            raise CorruptBackup("missing")
        for offset, ts_type, ts, body in frames(path):
            while pending and pending[0] <= offset:
                translated[pending.pop(0)] = digest.count
            key, value, headers = decode_body(body)
            digest.add(ts_type, ts, body)
            kwargs = {"timestamp": ts} if ts_type == TIMESTAMP_CREATE_TIME else {}
            while True:
                try:
                    producer.produce(topic, value, key, partition=partition, on_delivery=delivered,
                                     headers=headers or None, **kwargs)
                    break
                except BufferError:  # the bounded queue is full: let deliveries drain it
                    producer.poll(0.1)
                    deadline.left(what=f"replaying {topic}")
            producer.poll(0)
        damage = None
    except CorruptBackup as exc:
        damage = str(exc)
    return digest, translated | {c: digest.count for c in pending}, damage


# --- the backup directory ------------------------------------------------------------------

def export_backup(ep: KafkaEndpoint, work_dir: Path, names: list[str], deadline: Deadline,
                  progress: Callable[[str], None]) -> tuple[Path, float]:
    """Export the named topics into a new directory under `work_dir`; return it and the
    seconds it took. An export that fails leaves nothing behind: a partial copy of the data
    is no backup."""
    exported_at, started = time.time(), time.monotonic()
    out = Path(work_dir) / f"kafka-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
    out.mkdir(parents=True)
    os.chmod(out, 0o700)
    consumer = None
    try:
        admin = kafka_client.admin(ep, deadline.client_s, duty="drills")
        cluster = admin.list_topics(timeout=deadline.left())
        present = [n for n in names if n in cluster.topics and cluster.topics[n].partitions]
        configs = topic_configs(admin, present, deadline)
        topics = {n: {"partitions": len(cluster.topics[n].partitions), "config": configs.get(n, {}),
                      "replication_factor": max(len(p.replicas) for p in cluster.topics[n].partitions.values())}
                  for n in present}
        # Offsets before records: a committed offset is then never past the watermarks read after.
        groups = group_offsets(admin, set(present), deadline)
        progress(f"exported {len(topics)} topic configuration(s) and {len(groups)} consumer group(s)")
        consumer = kafka_client.consumer(ep, deadline.client_s, CONSUMER_SETTINGS
                                         | {"group.id": f"backbone-backup-{secrets.token_hex(4)}"}, duty="drills")  # assigned, never joined
        records = {}
        for name in present:
            progress(f"exporting the records of {name} ({topics[name]['partitions']} partition(s))")
            (out / "records" / name).mkdir(parents=True)
            records[name] = read_partitions(consumer, name, topics[name]["partitions"], deadline,
                                            out / "records" / name, progress)
        export_s = time.monotonic() - started
        _write_json(out / "topics.json", topics)
        _write_json(out / "groups.json", groups)
        _write_json(out / "manifest.json", {
            "format": FORMAT, "exported_at": exported_at, "export_s": round(export_s, 3),
            "exported_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exported_at)),
            "absent": [n for n in names if n not in present], "records": records})
        return out, export_s
    except KafkaException as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise BackupDrillError(f"exporting from Kafka at {ep.bootstrap_servers}: {kafka_text(exc)}") from None
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if consumer is not None:
            consumer.close()


def topic_configs(admin: AdminClient, names: list[str], deadline: Deadline) -> dict[str, dict[str, str]]:
    """Each topic's own configuration: the entries set on the topic (DYNAMIC_TOPIC_CONFIG);
    the rest are the cluster's defaults, which are not the topic's to carry."""
    if not names:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names],
                                     request_timeout=deadline.left())
    return {res.name: {k: e.value for k, e in sorted(f.result(timeout=deadline.left()).items())
                       if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and e.value is not None}
            for res, f in futures.items()}


def group_offsets(admin: AdminClient, topics: set[str], deadline: Deadline) -> dict[str, Any]:
    """group -> topic -> partition -> committed offset and metadata, for the groups that
    committed on `topics` (those offsets only)."""
    def listing() -> list[str]:
        listed = admin.list_consumer_groups(request_timeout=deadline.left()).result(timeout=deadline.left())
        if listed.errors:  # a broker still loading its share of the groups: ask again, never skip them
            raise KafkaException(listed.errors[0])
        return sorted(g.group_id for g in listed.valid)

    out: dict[str, Any] = {}
    for group in retrying(listing, deadline):
        for tp in committed(admin, group, deadline):
            if tp.topic in topics and tp.offset >= 0:
                out.setdefault(group, {}).setdefault(tp.topic, {})[str(tp.partition)] = {
                    "offset": tp.offset, "metadata": tp.metadata or ""}
    return out


def read_backup(backup_dir: Path, topics: list[str] | None) -> tuple[dict, dict, dict]:
    """(manifest, topics, groups) of a backup directory, limited to `topics` when given."""
    if not (backup_dir / "manifest.json").is_file():
        raise BackupDrillError(f"{backup_dir} holds no manifest.json: not a complete Kafka backup "
                               "(an export that did not finish leaves none)")
    try:
        manifest, meta, groups = (json.loads((backup_dir / f"{n}.json").read_text())
                                  for n in ("manifest", "topics", "groups"))
    except (OSError, ValueError) as exc:
        raise BackupDrillError(f"{backup_dir}: unreadable backup ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BackupDrillError(f"{backup_dir}: not a backbone Kafka backup (format {manifest.get('format')!r})")
    if topics is not None:
        unknown = sorted(set(topics) - set(meta))
        if unknown:
            raise BackupDrillError(f"not in the backup {backup_dir}: {', '.join(unknown)}")
        meta = {n: m for n, m in meta.items() if n in topics}
        groups = {g: kept for g, by_topic in groups.items()
                  if (kept := {t: o for t, o in by_topic.items() if t in topics})}
    return manifest, meta, groups


def _write_json(path: Path, data: Any) -> None:
    with private_file(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
