"""Continuous writers for the live drills: each write is a unique, checkable record, and a
write counts as acknowledged only when the service confirmed it (Kafka acks=all, a
committed PostgreSQL insert, a Redis reply). After recovery `read_back` says which
acknowledged records survived. Each client follows failover its own way: libpq's
multi-host URL with target_session_attrs=read-write, redis-py's Sentinel, Kafka natively."""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import psycopg
import redis
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from ..contract import Contract
from ..clients import timescale as timescale_client
from ..clients import kafka as kafka_client
from ..clients.kafka import ensure_topic
from ..clients.redis import redis_client
from .faults import FaultError

DRILL_TOPIC = "backbone.drill"


class KafkaWorkload:
    name = "kafka"

    def __init__(self, contract: Contract, timeout_s: float = 10):
        self.ep = contract.kafka
        self.run_id = uuid.uuid4().hex[:12]
        admin = kafka_client.admin(self.ep, timeout_s, duty="drills")
        brokers = len(admin.list_topics(timeout=timeout_s).brokers)
        rf = min(3, brokers)
        ensure_topic(admin, NewTopic(DRILL_TOPIC, 1, rf, config={"min.insync.replicas": str(min(2, rf))}),
                     timeout_s)
        self.admin = admin
        # idempotent, acks=all: an acknowledged record is on every in-sync replica
        self.producer = kafka_client.producer(self.ep, timeout_s, {"acks": "all", "enable.idempotence": True,
                                                                   "linger.ms": 0,
                                                                   "message.timeout.ms": int(timeout_s * 1000)},
                                              duty="drills")
        self.timeout_s = timeout_s
        self.start_offset = self._end_offset()

    def _end_offset(self) -> int:
        consumer = kafka_client.consumer(self.ep, self.timeout_s, {"group.id": "backbone-drill"}, duty="drills")
        try:
            # a topic created a moment ago may have no leader yet: ask again until it has one
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    return consumer.get_watermark_offsets(TopicPartition(DRILL_TOPIC, 0), timeout=self.timeout_s)[1]
                except KafkaException as exc:
                    code = exc.args[0].code() if exc.args else None
                    if code not in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                    KafkaError._UNKNOWN_PARTITION) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            consumer.close()

    def leader(self) -> int:
        return self.admin.list_topics(DRILL_TOPIC, timeout=self.timeout_s).topics[DRILL_TOPIC].partitions[0].leader

    def write(self, seq: int) -> None:
        result: dict = {}
        self.producer.produce(DRILL_TOPIC, key=f"{self.run_id}:{seq}".encode(), value=b"1",
                              on_delivery=lambda err, msg: result.update(err=err))
        self.producer.flush(self.timeout_s + 1)
        if "err" not in result:
            raise TimeoutError("no acknowledgement")
        if result["err"] is not None:
            raise KafkaException(result["err"])

    def read_back(self, seqs: list[int]) -> set[int]:
        consumer = kafka_client.consumer(self.ep, self.timeout_s, {"group.id": "backbone-drill",
                                                                   "enable.auto.commit": False}, duty="drills")
        found: set[int] = set()
        try:
            end = consumer.get_watermark_offsets(TopicPartition(DRILL_TOPIC, 0), timeout=self.timeout_s)[1]
            consumer.assign([TopicPartition(DRILL_TOPIC, 0, self.start_offset)])
            position = self.start_offset
            while position < end:
                msg = consumer.poll(self.timeout_s)
                if msg is None:  # a read that stopped short would count every record past it as lost
                    raise FaultError(f"reading {DRILL_TOPIC} back stalled at offset {position} of {end}: "
                                     "nothing is judged lost on a partial read")
                if msg.error():
                    continue
                position = msg.offset() + 1
                run, _, seq = msg.key().decode().partition(":")
                if run == self.run_id:
                    found.add(int(seq))
        finally:
            consumer.close()
        return found & set(seqs)

    def close(self) -> None:
        self.producer.flush(1)


class RedisWorkload:
    name = "redis"

    def __init__(self, contract: Contract, timeout_s: float = 1):
        self.ep = contract.redis
        self.timeout_s = timeout_s
        self.run_id = uuid.uuid4().hex[:12]
        self.client = redis_client(self.ep, timeout_s)

    def _key(self, seq: int) -> str:
        return f"{self.ep.cache_policy.namespace}:drill:{self.run_id}:{seq}"

    def write(self, seq: int) -> None:
        try:
            self.client.set(self._key(seq), "1", ex=3600)
        except redis.exceptions.ResponseError as exc:
            # an isolated master that min-replicas-to-write stopped (NOREPLICAS), or one
            # demoted after a heal (READONLY): ask Sentinel again on the next write, as a
            # client following a failover must (redis-py keeps the connection otherwise)
            if str(exc).startswith(("NOREPLICAS", "READONLY")):
                self.client.connection_pool.disconnect()
            raise

    def read_back(self, seqs: list[int]) -> set[int]:
        client = redis_client(self.ep, 5)
        try:
            found = set()
            for i in range(0, len(seqs), 500):
                chunk = seqs[i:i + 500]
                values = client.mget([self._key(s) for s in chunk])
                found |= {s for s, v in zip(chunk, values) if v is not None}
            return found
        finally:
            client.close()

    def close(self) -> None:
        self.client.close()


class TimescaleWorkload:
    name = "timescale"

    def __init__(self, contract: Contract, timeout_s: float = 2):
        self.ep = contract.timescale
        self.timeout_s = timeout_s
        self.run_id = uuid.uuid4().hex[:12]
        self.conn: psycopg.Connection | None = None
        # the drill's table is the schema owner's to create (default privileges let the
        # application, which the drill writes as, insert and read)
        with timescale_client.connect(self.ep, self.timeout_s, autocommit=True, duty="owner") as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS backbone_drill (run_id text NOT NULL, seq bigint NOT NULL, "
                         "at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run_id, seq))")

    def _connect(self) -> psycopg.Connection:
        return timescale_client.connect(self.ep, self.timeout_s, autocommit=True)

    def write(self, seq: int) -> int:
        """Insert one record; the port of the server that committed it."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self._connect()
            # autocommit: the insert is acknowledged only once it committed (synchronously
            # replicated when Patroni runs in synchronous mode). A server that stopped
            # answering (paused, partitioned) never trips statement_timeout, which it would
            # have to enforce itself: a timer shuts the socket down instead, so the write
            # fails and the next one reconnects through the multi-host URL
            watchdog = threading.Timer(self.timeout_s * 2, _shut, (self.conn.pgconn.socket,))
            watchdog.start()
            try:
                self.conn.execute("INSERT INTO backbone_drill (run_id, seq) VALUES (%s, %s)", (self.run_id, seq))
            finally:
                watchdog.cancel()
            return self.conn.info.port
        except psycopg.Error:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            raise

    def read_back(self, seqs: list[int]) -> set[int]:
        with self._connect() as conn:
            rows = conn.execute("SELECT seq FROM backbone_drill WHERE run_id = %s", (self.run_id,)).fetchall()
        return {r[0] for r in rows} & set(seqs)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _shut(fd: int) -> None:
    try:
        socket.socket(fileno=os.dup(fd)).shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


WORKLOADS = {"kafka": KafkaWorkload, "redis": RedisWorkload, "timescale": TimescaleWorkload}
