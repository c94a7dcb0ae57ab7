"""The Kafka backup / restore drill: prove that an export of the declared topics restores, how
long the restore takes (against the RTO) and how old the export is (against the RPO).

Export the declared topics' configurations, the committed offsets of the consumer groups on
them and their retained records (or take a given export); start a scratch single-node KRaft
Kafka on free 127.0.0.1 ports; recreate the topics, replay the records partition by partition
and recreate the group offsets; read everything back and compare it with the export. The
scratch cluster is stopped and its files removed whatever happens. The backup directory and
its record files: backup_kafka_io.
"""
from __future__ import annotations

import concurrent.futures
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from ..clients import kafka as kafka_client
from ..clients.kafka import kafka_text
from ..contract import Contract, KafkaEndpoint
from ..local.binaries import SETUP_HINT, find_binaries
from ..local.processes import is_ours, spawn, stop
from ..local.services import LocalError, kafka_ready, prepare_kafka
from ..report import Redactor
from .backup import BackupDrillError, RestoreVerdict
from .live import mark, rounded
from .backup_kafka_io import (CONSUMER_SETTINGS, PRODUCER_SETTINGS, Deadline, alter_offsets, committed, export_backup,
                              read_backup, read_partitions, replay_partition, topic_configs)

# One broker: every replication factor becomes 1, and a min.insync.replicas above 1 would
# refuse every acks=all write, so it is capped too (and left out of the comparison).
_CAPPED = frozenset({"min.insync.replicas"})
# Broker ids of the source cluster mean nothing on the scratch one.
_NOT_RESTORED = frozenset({"follower.replication.throttled.replicas", "leader.replication.throttled.replicas"})
# Timestamp bounds would refuse the replay of old records the source once accepted: set after it.
_AFTER_REPLAY = frozenset({"message.timestamp.before.max.ms", "message.timestamp.after.max.ms"})
# The scratch broker must not delete replayed records by retention before they are compared,
# and one offsets partition is all a drill needs (50, the default, take seconds to create).
_SCRATCH_PROPERTIES = {"log.retention.check.interval.ms": str(7 * 86_400_000), "offsets.topic.num.partitions": "1"}
_EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of nothing


@dataclass
class PartitionCheck:
    source_count: int                   # as exported (the manifest)
    source_sha256: str
    file_count: int | None = None       # what the record file held when replayed
    file_sha256: str | None = None
    restored_count: int | None = None   # read back from the scratch cluster
    restored_sha256: str | None = None
    damage: str | None = None           # the file could not be read to its end

    @property
    def match(self) -> bool:
        return self.damage is None and self.source_count == self.file_count == self.restored_count \
            and self.source_sha256 == self.file_sha256 == self.restored_sha256


@dataclass
class TopicCheck:
    partitions: tuple[int, int | None]           # (source, restored)
    replication_factor: tuple[int, int | None]   # restored is capped to 1: reported, not compared
    configs: dict[str, tuple[str, str | None]]   # the compared keys: (source, restored)

    @property
    def match(self) -> bool:
        return self.partitions[0] == self.partitions[1] and all(s == r for s, r in self.configs.values())


@dataclass
class KafkaBackupDrill(RestoreVerdict):
    backup_dir: Path
    backup_age_s: float
    objectives: dict[str, float]
    restore_s: float = 0.0                       # cluster start + topics + replay + offsets
    phases: dict[str, float] = field(default_factory=dict)  # those four, and verify (not in restore_s)
    topics: dict[str, TopicCheck] = field(default_factory=dict)
    partitions: dict[str, dict[int, PartitionCheck]] = field(default_factory=dict)
    groups: dict[str, dict[str, tuple[int, int, int | None]]] = field(default_factory=dict)
    # group -> "topic[p]" -> (source offset, expected restored offset, restored offset)
    backup_taken: bool = False
    export_s: float | None = None
    exported_at: str = ""
    scratch: dict[str, Any] = field(default_factory=dict)  # dir, port, controller_port, pid, removed
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(c.source_count for parts in self.partitions.values() for c in parts.values())

    @property
    def ok(self) -> bool:
        return bool(self.topics) and all(t.match for t in self.topics.values()) \
            and all(c.match for parts in self.partitions.values() for c in parts.values()) \
            and all(e == r for offsets in self.groups.values() for _s, e, r in offsets.values())

    @property
    def age_s(self) -> float:
        return self.backup_age_s

    def to_dict(self) -> dict[str, Any]:
        return {"service": "kafka", "backup_dir": str(self.backup_dir), "backup_taken": self.backup_taken,
                "export_s": rounded(self.export_s), "exported_at": self.exported_at, "backup_age_s": rounded(self.backup_age_s),
                "restore_s": rounded(self.restore_s), "phases": {k: rounded(v) for k, v in self.phases.items()},
                "records": self.records, "scratch": self.scratch,
                "topics": {n: {"source_partitions": t.partitions[0], "restored_partitions": t.partitions[1],
                               "source_replication_factor": t.replication_factor[0],
                               "restored_replication_factor": t.replication_factor[1],
                               "configs": {k: {"source": s, "restored": r, "match": s == r}
                                           for k, (s, r) in t.configs.items()}, "match": t.match}
                           for n, t in self.topics.items()},
                "partitions": {n: {str(p): asdict(c) | {"match": c.match} for p, c in parts.items()}
                               for n, parts in self.partitions.items()},
                "groups": {g: {tp: {"source_offset": s, "expected_offset": e, "restored_offset": r, "match": e == r}
                               for tp, (s, e, r) in offsets.items()} for g, offsets in self.groups.items()},
                "objectives": self.objectives, "ok": self.ok, "rto_met": self.rto_met, "rpo_met": self.rpo_met,
                "passed": self.passed, "notes": self.notes}

    def to_markdown(self) -> str:
        return to_markdown(self)


def run(contract: Contract, options) -> KafkaBackupDrill:
    """The registry's signature (drills/backups.py)."""
    return kafka_backup_drill(contract, options.work_dir, backup=options.given,
                              topics=list(options.topics) if options.topics else None,
                              timeout_s=options.timeout_s, progress=options.progress)


def kafka_backup_drill(contract: Contract, work_dir: Path, backup: Path | None = None,
                       topics: list[str] | None = None, timeout_s: float = 600.0,
                       progress: Callable[[str], None] | None = None) -> KafkaBackupDrill:
    """Export the declared topics (or only `topics` of them) into a new directory under
    `work_dir`, or take the export in `backup`; restore it into a scratch cluster under
    `work_dir` and compare. Raises BackupDrillError (no secret in it) when it cannot run."""
    if contract.kafka is None:
        raise BackupDrillError("the Kafka backup drill needs a kafka section in the contract")
    redactor = Redactor(contract.secrets())

    def say(text: str) -> None:
        if progress is not None:
            progress(redactor.scrub(text))

    deadline, work_dir, export_s = Deadline(timeout_s), Path(work_dir), None
    try:
        if backup is None:
            declared = [t.name for t in contract.kafka.topics]
            unknown = sorted(set(topics or []) - set(declared))
            if unknown:
                raise BackupDrillError(f"not declared in the contract's kafka.topics: {', '.join(unknown)}")
            names = [n for n in declared if topics is None or n in topics]
            if not names:
                raise BackupDrillError("the contract declares no Kafka topics to back up (kafka.topics)")
            say(f"exporting {len(names)} declared topic(s) from {contract.kafka.bootstrap_servers}")
            backup, export_s = export_backup(contract.kafka, work_dir, names, deadline, say)
        manifest, meta, groups = read_backup(Path(backup), topics)
        if not meta:
            raise BackupDrillError(f"{backup}: the backup holds no topic")
        drill = KafkaBackupDrill(Path(backup), max(0.0, time.time() - float(manifest["exported_at"])),
                                 contract.objectives.kafka.model_dump(), backup_taken=export_s is not None,
                                 export_s=export_s, exported_at=manifest.get("exported_at_utc", ""))
        if manifest.get("absent"):
            drill.notes.append("declared, but not on the source cluster when exported: "
                               + ", ".join(manifest["absent"]))
        _restore_and_compare(drill, manifest, meta, groups, work_dir, deadline, say)
    except BackupDrillError as exc:
        raise BackupDrillError(redactor.scrub(str(exc))) from None
    except (KafkaException, concurrent.futures.TimeoutError) as exc:
        raise BackupDrillError(redactor.scrub(f"Kafka backup drill: {kafka_text(exc)}")) from None
    except (OSError, LocalError, ValueError, KeyError, TypeError) as exc:
        raise BackupDrillError(redactor.scrub(f"Kafka backup drill: {type(exc).__name__}: {exc}")) from None
    drill.notes = [redactor.scrub(n) for n in drill.notes]
    return drill


class ScratchKafka:
    """A single-node KRaft Kafka on free 127.0.0.1 ports, in a directory of its own under
    `parent` (the work dir: the replayed records need the backup's room, which /tmp may lack)."""

    def __init__(self, parent: Path):
        self.parent, self.dir, self.node = parent, None, {}

    def start(self, deadline: Deadline) -> KafkaEndpoint:
        bins = find_binaries()
        if missing := bins.missing(["kafka"]):
            raise BackupDrillError(f"the scratch Kafka needs {', '.join(missing)}; {SETUP_HINT}")
        self.parent.mkdir(parents=True, exist_ok=True)
        # absolute: the broker's configuration names its folders, whatever its working directory
        self.dir = Path(tempfile.mkdtemp(prefix="kafka-restore-", dir=self.parent)).absolute()
        try:
            [self.node] = prepare_kafka(self.dir, bins, 1)
            with open(Path(self.node["home"]) / "server.properties", "a") as props:
                props.write("".join(f"{k}={v}\n" for k, v in _SCRATCH_PROPERTIES.items()))
            started = spawn(self.node["argv"], Path(self.node["log"]))
            self.node["pid"], self.node["start_ticks"] = started.pid, started.start_ticks
            kafka_ready([self.node], deadline.left(cap=180))
        except LocalError as exc:
            raise BackupDrillError(f"the scratch Kafka did not start: {exc}") from None
        return KafkaEndpoint(bootstrap_servers=f"127.0.0.1:{self.node['port']}")

    def close(self) -> dict[str, Any]:
        """Stop the broker (SIGKILL after 10 s: its files go next anyway), remove its files."""
        pid, ticks = self.node.get("pid"), self.node.get("start_ticks")
        if pid:
            stop(pid, ticks, signal.SIGTERM, grace_s=10)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        return {"dir": str(self.dir), "port": self.node.get("port"),
                "controller_port": self.node.get("controller_port"), "pid": pid,
                "removed": not is_ours(pid, ticks) and (self.dir is None or not self.dir.exists())}


def _restore_and_compare(drill: KafkaBackupDrill, manifest: dict, meta: dict, groups: dict, work_dir: Path,
                         deadline: Deadline, say: Callable[[str], None]) -> None:
    scratch, phases = ScratchKafka(work_dir), drill.phases

    def timed(phase: str, step: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = step()
        phases[phase] = time.monotonic() - started
        return result

    try:
        say("starting a scratch single-node Kafka")
        ep = timed("cluster_start", lambda: scratch.start(deadline))
        say(f"scratch Kafka ready on {ep.bootstrap_servers} after {phases['cluster_start']:.1f} s")
        admin = kafka_client.admin(ep, deadline.client_s)
        timed("topics", lambda: _create_topics(admin, meta, deadline, drill.notes))
        expected = timed("replay", lambda: _replay(admin, ep, manifest, meta, groups, drill, deadline, say))
        timed("offsets", lambda: _restore_offsets(admin, expected, deadline))
        drill.restore_s = sum(phases.values())
        say(f"restored in {drill.restore_s:.1f} s; reading the copy back to compare")
        timed("verify", lambda: _compare(admin, ep, meta, expected, drill, deadline))
    except KafkaException as exc:
        where = f"127.0.0.1:{scratch.node.get('port')}"
        raise BackupDrillError(f"the scratch Kafka on {where}: {kafka_text(exc)}") from None
    finally:
        drill.scratch = scratch.close()
        if not drill.scratch["removed"]:  # said now too: a failing drill returns no notes
            drill.notes.append(f"the scratch Kafka (pid {drill.scratch['pid']}, {drill.scratch['dir']}) could not "
                               "be removed; stop and delete it by hand")
            say(drill.notes[-1])


def _create_topics(admin: AdminClient, meta: dict, deadline: Deadline, notes: list[str]) -> None:
    new = []
    for name, m in meta.items():
        config = {k: v for k, v in m["config"].items() if k not in _NOT_RESTORED | _AFTER_REPLAY}
        for key in sorted(_CAPPED & set(config)):
            if int(config[key]) > 1:
                notes.append(f"{name}: {key} {config[key]} capped to 1 on the single-node scratch cluster "
                             "(and not compared)")
                config[key] = "1"
        notes += [f"{name}: {key} names the source's brokers; not restored" for key in _NOT_RESTORED & set(m["config"])]
        if m["replication_factor"] > 1:
            notes.append(f"{name}: replication factor {m['replication_factor']} restored as 1 (one scratch broker)")
        new.append(NewTopic(name, m["partitions"], 1, config=config))
    for name, future in admin.create_topics(new, request_timeout=deadline.left(),
                                            operation_timeout=deadline.left()).items():
        try:
            future.result(timeout=deadline.left())
        except KafkaException as exc:
            raise BackupDrillError(f"creating {name} on the scratch cluster failed: {kafka_text(exc)}") from None


def _replay(admin: AdminClient, ep: KafkaEndpoint, manifest: dict, meta: dict, groups: dict, drill: KafkaBackupDrill,
            deadline: Deadline, say: Callable[[str], None]) -> dict[str, dict[tuple[str, int], tuple[int, int, str]]]:
    """Replay every partition file; return group -> (topic, partition) -> (source offset,
    restored offset, metadata)."""
    largest = max([int(m["config"].get("max.message.bytes", 0)) for m in meta.values()] + [1_000_000])
    producer = kafka_client.producer(ep, deadline.client_s, PRODUCER_SETTINGS | {"message.max.bytes": largest + 65_536})
    failures: list[str] = []
    expected: dict[str, dict[tuple[str, int], tuple[int, int, str]]] = {}
    for name, m in meta.items():
        exported = manifest["records"].get(name, {})
        say(f"replaying {name}: {sum(p['count'] for p in exported.values())} records")
        drill.partitions[name] = {}
        for p in range(m["partitions"]):
            source = exported.get(str(p), {"count": 0, "sha256": _EMPTY_SHA})
            commits = {g: by_topic[name][str(p)] for g, by_topic in groups.items() if str(p) in by_topic.get(name, {})}
            digest, translated, damage = replay_partition(producer, name, p, drill.backup_dir / "records" / name /
                                                          f"{p}.bin", [c["offset"] for c in commits.values()],
                                                          deadline, failures)
            drill.partitions[name][p] = PartitionCheck(source["count"], source["sha256"], digest.count,
                                                       digest.hexdigest, damage=damage)
            if damage is not None:
                drill.notes.append(f"{name}[{p}]: the backup's record file is {damage}; "
                                   f"{digest.count} of {source['count']} records replayed")
            for group, c in commits.items():
                if c["offset"] < (source.get("first_offset") or 0):
                    drill.notes.append(f"group {group} committed {name}[{p}] offset {c['offset']}, before the first "
                                       "retained record: restored as 0")
                expected.setdefault(group, {})[(name, p)] = (c["offset"], translated[c["offset"]], c["metadata"])
    if (left := producer.flush(deadline.left(cap=deadline.timeout_s))) or failures:
        drill.notes.append(f"replay: {left} record(s) not delivered; " + "; ".join(failures))
    deferred = [ConfigResource(ResourceType.TOPIC, n, incremental_configs=[
        ConfigEntry(k, m["config"][k], incremental_operation=AlterConfigOpType.SET) for k in sorted(keys)])
        for n, m in meta.items() if (keys := _AFTER_REPLAY & set(m["config"]))]
    if deferred:
        for future in admin.incremental_alter_configs(deferred, request_timeout=deadline.left()).values():
            future.result(timeout=deadline.left())
    return expected


def _restore_offsets(admin: AdminClient, expected: dict, deadline: Deadline) -> None:
    for group, offsets in expected.items():
        alter_offsets(admin, group, [TopicPartition(t, p, offset, metadata)
                                     for (t, p), (_src, offset, metadata) in offsets.items()], deadline)


def _compare(admin: AdminClient, ep: KafkaEndpoint, meta: dict, expected: dict, drill: KafkaBackupDrill,
             deadline: Deadline) -> None:
    cluster = admin.list_topics(timeout=deadline.left())
    restored_configs = topic_configs(admin, [n for n in meta if n in cluster.topics], deadline)
    consumer = kafka_client.consumer(ep, deadline.client_s,
                                     CONSUMER_SETTINGS | {"group.id": "backbone-verify"})  # assigned, never joined
    try:
        for name, m in meta.items():
            parts = len(cluster.topics[name].partitions) if name in cluster.topics else None
            have = restored_configs.get(name, {})
            drill.topics[name] = TopicCheck((m["partitions"], parts), (m["replication_factor"], 1 if parts else None),
                                            {k: (v, have.get(k)) for k, v in sorted(m["config"].items())
                                             if k not in _CAPPED | _NOT_RESTORED})
            drill.notes += [f"{name}: {k} is {s} in the backup, {r} restored"
                            for k, (s, r) in drill.topics[name].configs.items() if s != r]
            restored = read_partitions(consumer, name, parts, deadline) if parts else {}
            for p, check in drill.partitions[name].items():
                if p in restored:
                    check.restored_count, check.restored_sha256 = restored[p]["count"], restored[p]["sha256"]
                if check.damage is None and check.file_sha256 != check.source_sha256:
                    drill.notes.append(f"{name}[{p}]: the backup's record file does not match its manifest "
                                       f"({check.file_count} records read, {check.source_count} exported): "
                                       "the backup was altered or damaged")
                elif check.restored_sha256 != check.file_sha256:
                    drill.notes.append(f"{name}[{p}]: {check.restored_count} records restored of "
                                       f"{check.file_count} replayed, or their contents differ")
    finally:
        consumer.close()
    for group, offsets in expected.items():
        have = {(tp.topic, tp.partition): tp.offset for tp in committed(admin, group, deadline) if tp.offset >= 0}
        drill.groups[group] = {f"{t}[{p}]": (src, offset, have.get((t, p)))
                               for (t, p), (src, offset, _meta) in sorted(offsets.items())}


def to_markdown(result: KafkaBackupDrill) -> str:
    verdict = "✅ restore verified, objectives met" if result.passed else "❌ restore drill failed"
    how = f"taken by the drill in {result.export_s:.2f} s" if result.export_s is not None else "given"
    ph, scratch = result.phases, result.scratch
    rate = f", {result.records / ph['replay']:.0f} records/s" if ph.get("replay") else ""
    lines = ["# Backup / restore drill: kafka", "", f"**{verdict}**", "",
             f"Backup: `{result.backup_dir}` ({how}; exported {result.exported_at or 'at an unrecorded time'}); "
             f"restored into a scratch single-node Kafka on 127.0.0.1:{scratch.get('port')}, "
             + ("stopped and removed afterwards." if scratch.get("removed") else "NOT removed (see the notes)."), "",
             "| measure | value | objective | met |", "|---|---|---|---|",
             f"| RTO: restore time | {result.restore_s:.2f} s | ≤ {result.objectives['rto_s']:g} s | "
             f"{mark(result.rto_met)} |",
             f"| RPO: backup age | {result.backup_age_s:.1f} s | ≤ {result.objectives['rpo_s']:g} s | "
             f"{mark(result.rpo_met)} |", "",
             f"Restore time = cluster start {ph.get('cluster_start', 0):.2f} s + topics {ph.get('topics', 0):.2f} s "
             f"+ record replay {ph.get('replay', 0):.2f} s ({result.records} records{rate}) + group offsets "
             f"{ph.get('offsets', 0):.2f} s; reading the copy back to compare took {ph.get('verify', 0):.2f} s more.",
             "", "| topic | partitions (source / restored) | replication factor | configs compared | match |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {t.partitions[0]} / {_shown(t.partitions[1])} | {t.replication_factor[0]} → "
              f"{_shown(t.replication_factor[1])} | {len(t.configs)} | {mark(t.match)} |"
              for n, t in result.topics.items()]
    lines += ["", "| partition | source records | restored records | source sha256 | restored sha256 | match |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {n}[{p}] | {c.source_count} | {_shown(c.restored_count)} | `{c.source_sha256[:12]}` | "
              f"`{_shown(c.restored_sha256)[:12]}` | {mark(c.match)} |"
              for n, parts in result.partitions.items() for p, c in parts.items()]
    if result.groups:
        lines += ["", "Committed offsets are translated into the restored numbering (the replayed records start at "
                  "offset 0): an offset becomes the number of backed-up records before it.", "",
                  "| group | partition | source offset | expected | restored | match |", "|---|---|---|---|---|---|"]
        lines += [f"| {g} | {tp} | {s} | {e} | {_shown(r)} | {mark(e == r)} |"
                  for g, offsets in result.groups.items() for tp, (s, e, r) in offsets.items()]
    if result.notes:
        lines += ["", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    return "missing" if value is None else str(value)
