"""The relay's position against transactions that commit out of sequence order, on real
TimescaleDB and Kafka: a seq is drawn at insert, not at commit, so a transaction still open
can commit below seqs already visible. Its events are neither skipped nor overtaken by a
later event of the same series."""
import threading
import uuid

import psycopg
import pytest

from backbone.data.outbox import ingest_events
from backbone.data.store_timescale import TimescaleStore, series_bucket
from backbone.errors import ConfigError
from backbone.events.relay import Relay

from .test_outbox import T0, consume_all, contract_of
from ..pg import url


def events_for(symbol: str) -> list[dict]:
    return ingest_events(uuid.uuid4().hex, "bars", {symbol: [1, 0, T0, T0]}, "test_relay_order")


def connect(contract, duty=None) -> psycopg.Connection:
    # a lock wait this test did not mean fails it instead of hanging the session
    return psycopg.connect(url(contract, duty), options="-c lock_timeout=30000")


def symbols_in_two_buckets() -> tuple[str, str]:
    """Two series whose events take different series locks (so one thread can hold both
    transactions open)."""
    first = "L" + uuid.uuid4().hex[:6]
    while True:
        second = "E" + uuid.uuid4().hex[:6]
        if series_bucket(f"bars:{second}") != series_bucket(f"bars:{first}"):
            return first, second


def open_writer(contract, events: list[dict]) -> tuple[psycopg.Connection, int]:
    """A transaction that has written `events` the way an ingest does, not committed; the
    seq it drew."""
    conn = connect(contract)
    TimescaleStore.write_events(conn, events)
    return conn, conn.execute("SELECT seq FROM outbox WHERE id = %s", (events[0]["id"],)).fetchone()[0]


def drain(contract) -> tuple[int, int]:
    """One relay run to the frontier: (its position afterwards, the backlog it left)."""
    with Relay(contract) as relay:
        assert relay.acquire()
        relay.drain()
        return relay.position, relay.backlog().events


def test_a_late_commit_below_visible_seqs_is_neither_skipped_nor_passed(local_env):
    contract = contract_of(local_env)
    drain(contract)  # earlier tests' events out of the way
    late, early = map(events_for, symbols_in_two_buckets())
    slow, low = open_writer(contract, late)  # draws the lower seq, commits last
    try:
        fast, high = open_writer(contract, early)
        fast.commit()
        fast.close()
        assert low < high
        position, backlog = drain(contract)  # the higher seq is visible, the lower one not yet
        assert position < low, "the position passed a seq whose transaction had not ended"
        assert backlog >= 1  # the committed event waits behind the open transaction
        slow.commit()
    finally:
        slow.close()
    position, backlog = drain(contract)
    assert position >= high and backlog == 0
    ids = [late[0]["id"], early[0]["id"]]
    got, _ = consume_all(contract, ids)
    # two series: two keys, maybe two partitions, so no order between them to check here
    assert sorted(i for i in got if i in ids) == sorted(ids), "the late commit's event was skipped"


def test_one_series_events_leave_in_commit_order_when_its_ingests_overlap(local_env):
    """Two transactions write events for one series; the one that drew the higher seq tries
    to commit first. Whatever order they end up committing in, the events leave in it."""
    contract = contract_of(local_env)
    symbol = "O" + uuid.uuid4().hex[:6]
    first, second = events_for(symbol), events_for(symbol)
    holder, _ = open_writer(contract, first)
    other = connect(contract)
    pid = other.info.backend_pid

    def write_and_commit() -> None:
        TimescaleStore.write_events(other, second)
        other.commit()

    writer = threading.Thread(target=write_and_commit)
    try:
        writer.start()
        with psycopg.connect(url(contract), autocommit=True) as watch:
            # until the second transaction has committed or waits on a lock
            while writer.is_alive() and not watch.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
                writer.join(0.01)
        waited = writer.is_alive()  # on the first transaction: it can only commit after it
        holder.commit()
        writer.join(60)
        assert not writer.is_alive()
    finally:
        holder.close()  # rolled back unless committed
        writer.join(60)
        other.close()
    order = [first[0]["id"], second[0]["id"]] if waited else [second[0]["id"], first[0]["id"]]
    drain(contract)
    got, _ = consume_all(contract, order)
    assert [i for i in got if i in order] == order, "one series' events left out of commit order"


def test_an_open_transaction_that_wrote_no_events_holds_nothing_back(local_env):
    """Only outbox writers hold the frontier: a long write transaction elsewhere (here one
    that took a transaction id and stays open, which holds back the snapshot's xmin) does
    not delay events committed after it began."""
    contract = contract_of(local_env)
    with connect(contract) as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")
        events = events_for("N" + uuid.uuid4().hex[:6])
        writer, seq = open_writer(contract, events)
        writer.commit()
        writer.close()
        position, backlog = drain(contract)
        assert position >= seq and backlog == 0
        elsewhere.rollback()


def test_a_sequence_that_hands_out_cached_values_is_refused_with_the_fix(local_env):
    contract = contract_of(local_env)
    with connect(contract, "owner") as pg:  # the schema's owner: the application may not alter it
        pg.autocommit = True
        pg.execute("ALTER SEQUENCE outbox_seq_seq CACHE 20")
        try:
            with pytest.raises(ConfigError, match=r"CACHE 20; the relay needs CACHE 1 \(ALTER SEQUENCE"):
                Relay(contract)
        finally:
            pg.execute("ALTER SEQUENCE outbox_seq_seq CACHE 1")


def test_a_standby_relay_publishes_nothing(local_env):
    contract = contract_of(local_env)
    writer, seq = open_writer(contract, events_for("S" + uuid.uuid4().hex[:6]))
    writer.commit()
    writer.close()
    with Relay(contract) as active, Relay(contract) as standby:
        assert active.acquire() and not standby.acquire()
        assert standby.drain() == 0 and standby.position == 0
        assert active.drain() >= 1 and active.position >= seq
