"""The data path on both tiers: real TimescaleDB + Redis (the session's local environment)
and the embedded bootstrap store, through the same API."""
import datetime as dt
import json
import socket
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest

from backbone.contract import Contract, merge_outputs
from backbone.data import IngestRejected, open_backbone
from backbone.data.rows import Bar, Trade
from ..pg import admin, url

T0 = dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc)


def institutional(local_env, **cache_policy) -> Contract:
    doc = merge_outputs(json.loads(local_env["outputs"].read_text()))
    doc["redis"] = {**doc["redis"], "cache_policy": {"namespace": "emp:cache:test:" + uuid.uuid4().hex[:6], **cache_policy}}
    return Contract.model_validate(doc)


def bootstrap(store, **cache_policy) -> Contract:
    doc = {"contract_version": 1, "tier": "bootstrap", "bootstrap": {"store": str(store)}}
    if cache_policy:
        doc["redis"] = {"cache_policy": {"namespace": "test", **cache_policy}}
    return Contract.model_validate(doc)


@pytest.fixture(scope="module")
def bootstrap_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("bootstrap") / "store.db"
    subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply", "--extra", f"BACKBONE_BOOTSTRAP_STORE={store}"],
                   check=True, capture_output=True)
    return store


@pytest.fixture(params=["institutional", "bootstrap"])
def tier(request, local_env, bootstrap_store):
    """A function that opens the backbone on this tier, with an optional cache policy."""
    make = (lambda **p: institutional(local_env, **p)) if request.param == "institutional" \
        else (lambda **p: bootstrap(bootstrap_store, **p))
    make.name = request.param
    return make


def symbols(n: int) -> list[str]:
    prefix = "T" + uuid.uuid4().hex[:6].upper()
    return [f"{prefix}{i}" for i in range(n)]


def bars(syms, days, bump=0.0, start=T0):
    return [Bar(s, start + dt.timedelta(days=d), 10 + bump, 11 + bump, 9.0, 10.5, 100 + d, "test")
            for d in range(days) for s in syms]


def test_ingest_is_idempotent_and_updates_changed_values(tier):
    syms = symbols(3)
    with open_backbone(tier()) as bb:
        first = bb.ingest("bars", bars(syms, 10), source="test")
        again = bb.ingest("bars", bars(syms, 10), source="test")
        changed = bb.ingest("bars", bars(syms, 10, bump=1.0), source="test")
        read = bb.bars(syms, T0, T0 + dt.timedelta(days=30))
    assert (first.inserted, first.updated) == (30, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 30)
    assert (changed.inserted, changed.updated) == (0, 30)
    assert len(read) == 30 and {b.open for b in read} == {11.0}


def test_the_same_key_twice_in_one_batch_is_one_row(tier):
    syms = symbols(1)
    rows = bars(syms, 2) + bars(syms, 1, bump=5.0)  # day 0 again, changed: the last one wins
    with open_backbone(tier()) as bb:
        result = bb.ingest("bars", rows, source="test")
        read = bb.bars(syms, T0, T0 + dt.timedelta(days=5))
    assert result.inserted == 2 and len(read) == 2 and read.rows[0].open == 15.0


def test_concurrent_overlapping_ingests_leave_one_row_per_key_and_raise_nothing(tier):
    syms = symbols(4)
    a, b = bars(syms, 40), list(reversed(bars(syms, 40, bump=0.5)))[:120] + bars(syms[:2], 10, start=T0 + dt.timedelta(days=40))
    failures = []

    def ingest(rows):
        try:
            with open_backbone(tier()) as bb:
                for _ in range(3):
                    bb.ingest("bars", rows, source="concurrent")
        except Exception as exc:  # noqa: BLE001 - the test reports whatever surfaced
            failures.append(exc)
    threads = [threading.Thread(target=ingest, args=(rows,)) for rows in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    with open_backbone(tier()) as bb:
        read = bb.bars(syms, T0, T0 + dt.timedelta(days=60))
    keys = [(r.symbol, r.ts) for r in read]
    assert len(keys) == len(set(keys)) == 160 + 20


def test_journal_records_every_run(tier):
    syms = symbols(2)
    with open_backbone(tier()) as bb:
        result = bb.ingest("bars", bars(syms, 5), source="journal-test")
        rows = bb.store.query("SELECT status, rows, rows_inserted, rows_updated, rows_rejected, source, symbols "
                              + ("FROM ingest_runs WHERE run_id = %(r)s" if bb.store.dialect == "postgresql"
                                 else "FROM ingest_runs WHERE run_id = :r"), {"r": result.run_id})
    status, received, inserted, updated, rejected, source, series = rows[0]
    assert (status, received, inserted, updated, rejected, source) == ("ok", 10, 10, 0, 0, "journal-test")
    assert sorted(series if isinstance(series, list) else json.loads(series)) == syms
    assert result.freshness_s > 0


def test_bad_rows_are_refused_with_position_and_reason_and_nothing_is_written(tier):
    syms = symbols(1)
    good = bars(syms, 3)
    naive = Bar(syms[0], dt.datetime(2024, 3, 9), 10.0, 11.0, 9.0, 10.5, 1)
    cases = [(Bar(syms[0], T0, 10.0, 9.0, 11.0, 10.0, 1), "high 9 is below low 11"),
             (Bar(syms[0], T0, float("nan"), 11.0, 9.0, 10.0, 1), "open is not finite"),
             (naive, "ts has no time zone"),
             (Bar(syms[0], T0, 10.0, 11.0, 9.0, 10.0, -1), "volume must be a whole number of at least 0"),
             (Bar("bad symbol", T0, 10.0, 11.0, 9.0, 10.0, 1), "outside the symbol character set")]
    with open_backbone(tier()) as bb:
        for bad, reason in cases:
            with pytest.raises(IngestRejected) as info:
                bb.ingest("bars", good + [bad], source="bad")
            assert info.value.result.errors[0].position == 4 and reason in info.value.result.errors[0].reason
            assert len(bb.bars(syms, T0, T0 + dt.timedelta(days=10))) == 0  # all or nothing
        skipped = bb.ingest("bars", good + [cases[0][0]], source="skip", skip_invalid=True)
        assert (skipped.inserted, skipped.rejected) == (3, 1)


def test_cache_miss_then_hit_then_invalidated_by_an_ingest(tier):
    syms = symbols(2)
    with open_backbone(tier()) as bb:
        bb.ingest("bars", bars(syms, 5), source="test")
        window = (syms, T0, T0 + dt.timedelta(days=10))
        miss, hit = bb.bars(*window), bb.bars(*window)
        assert (miss.hit, hit.hit) == (False, True) and hit.rows == miss.rows
        other = bb.bars(symbols(1), T0, T0 + dt.timedelta(days=10))  # another query: its own entry
        assert not other.hit
        bb.ingest("bars", bars(syms[:1], 5, bump=2.0), source="test")  # changes one of the two symbols
        after = bb.bars(*window)
        assert not after.hit and {b.open for b in after if b.symbol == syms[0]} == {12.0}
        assert bb.cache.stats.invalidations >= 1 and bb.cache.stats.hits == 1


def test_ttl_expiry_and_key_budget(tier):
    syms = symbols(6)
    with open_backbone(tier(ttl_seconds=1, max_keys=3)) as bb:
        bb.ingest("bars", bars(syms, 2), source="test")
        window = (T0, T0 + dt.timedelta(days=5))
        assert not bb.bars(syms[:1], *window).hit and bb.bars(syms[:1], *window).hit
        time.sleep(1.2)
        assert not bb.bars(syms[:1], *window).hit  # expired
        for s in syms:  # six entries against a budget of three
            bb.bars([s], *window)
        assert bb.cache.stats.evictions >= 3
        assert not bb.bars(syms[1:2], *window).hit  # among the oldest, evicted
        assert bb.bars(syms[-1:], *window).hit  # the newest stays


def test_twenty_concurrent_misses_run_the_query_once(tier, local_env):
    syms = symbols(2)
    with open_backbone(tier()) as bb:
        bb.ingest("bars", bars(syms, 30), source="test")
        counted = _query_counter(bb, local_env)
        before = counted()
        barrier, results = threading.Barrier(20), []

        def read():
            barrier.wait()
            results.append(bb.bars(syms, T0, T0 + dt.timedelta(days=40)))
        threads = [threading.Thread(target=read) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 20 and all(len(r) == 60 for r in results)
        assert counted() - before == 1
        # the other 19 waited for that one (or, arriving after it, found its entry)
        assert bb.cache.stats.stampedes_avoided + bb.cache.stats.hits == 19 and bb.cache.stats.sets == 1


def _query_counter(bb, local_env):
    """How often the windowed bars query ran: PostgreSQL's own count (pg_stat_statements) on
    the institutional tier; the store's calls on the embedded one (no server to ask)."""
    if bb.store.dialect == "postgresql":
        # the server's superuser: the extension, and other accounts' statements, are its to see
        database = institutional(local_env).timescale.database
        with admin(local_env, database) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

        def count() -> int:
            with admin(local_env, database) as conn:
                return conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE "
                                    "'SELECT symbol, ts, open%FROM daily_bars WHERE symbol = ANY%'").fetchone()[0]
        return count
    calls = [0]
    query = bb.store.query

    def counting(statement, params):
        if "FROM daily_bars" in statement:
            calls[0] += 1
        return query(statement, params)
    bb.store.query = counting
    return lambda: calls[0]


def test_reads_are_answered_when_redis_is_down(local_env):
    with socket.socket() as s:  # a port nobody listens on: a stopped Redis
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    doc = merge_outputs(json.loads(local_env["outputs"].read_text()))
    doc["redis"] = {**doc["redis"], "port": dead}
    warnings = []
    syms = symbols(1)
    with open_backbone(Contract.model_validate(doc), warn=warnings.append) as bb:
        bb.ingest("bars", bars(syms, 3), source="test")  # invalidation fails quietly
        first = bb.bars(syms, T0, T0 + dt.timedelta(days=5))
        second = bb.bars(syms, T0, T0 + dt.timedelta(days=5))
    assert len(first) == len(second) == 3 and not second.hit
    assert first.source == "store (cache unavailable)" and warnings and "unavailable" in warnings[0]


def test_an_upsert_into_a_compressed_chunk(local_env):
    contract = institutional(local_env)
    syms = symbols(2)
    start = dt.datetime(2017, 1, 2, tzinfo=dt.timezone.utc)  # chunks no other test writes to
    with open_backbone(contract) as bb:
        bb.ingest("bars", bars(syms, 90, start=start), source="test")
        with psycopg.connect(url(contract, "owner"), autocommit=True) as conn:  # the hypertable's owner
            compressed = conn.execute("SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks("
                                      "'daily_bars', newer_than => '2016-11-01'::timestamptz, "
                                      "older_than => '2017-03-01'::timestamptz) c").fetchone()[0]
        assert compressed >= 1
        result = bb.ingest("bars", bars(syms, 90, bump=3.0, start=start), source="test")
        read = bb.bars(syms, start, start + dt.timedelta(days=90))
    assert (result.inserted, result.updated) == (0, 180)
    assert len(read) == 180 and {b.open for b in read} == {13.0}


def test_candles_from_trades_agree_on_both_tiers(local_env, bootstrap_store):
    sym = symbols(1)[0]
    t = dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.timezone.utc)
    trades = [Trade(sym, t + dt.timedelta(seconds=10 * i), f"t{i}", 100.0 + (i % 7), 1.0 + i % 3, "buy")
              for i in range(30)]
    answers = []
    for contract in (institutional(local_env), bootstrap(bootstrap_store)):
        with open_backbone(contract) as bb:
            bb.ingest("trades", trades, source="test")
            answers.append([(c.bucket, c.open, c.high, c.low, c.close, c.volume, c.trades)
                            for c in bb.candles([sym], t, t + dt.timedelta(minutes=10))])
    assert answers[0] == answers[1] and len(answers[0]) == 5
    first = answers[0][0]
    assert first[1] == 100.0 and first[6] == 6 and first[4] == trades[5].price
