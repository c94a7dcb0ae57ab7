"""Events through the outbox on real services: what a committed ingest announces reaches
consumers exactly once after deduplication, whatever dies when; nothing is announced for an
ingest that did not commit. Processes are killed with SIGKILL, for real."""
import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
import uuid

import psycopg
import pytest

from backbone.contract import Contract, merge_outputs
from backbone.data import IngestRejected, open_backbone
from backbone.data.rows import Bar
from backbone.events.bridge import open_bridge
from backbone.events.relay import Relay
from ..pg import url

T0 = dt.datetime(2024, 5, 6, tzinfo=dt.timezone.utc)


def contract_of(local_env) -> Contract:
    return Contract.model_validate(merge_outputs(json.loads(local_env["outputs"].read_text())))


def bars(symbols, days, bump=0.0):
    return [Bar(s, T0 + dt.timedelta(days=d), 10 + bump, 11 + bump, 9.0, 10.5, 100 + d, "test")
            for d in range(days) for s in symbols]


def fresh_symbols(n):
    prefix = "E" + uuid.uuid4().hex[:6].upper()
    return [f"{prefix}{i}" for i in range(n)]


def outbox_rows(contract, symbols):
    keys = [f"bars:{s}" for s in symbols]
    with psycopg.connect(url(contract)) as pg:
        # the last column: published (at or below the relay's position)
        return pg.execute("SELECT id, aggregatetype, aggregateid, type, payload, "
                          "seq <= (SELECT seq FROM outbox_position WHERE name = 'relay') FROM outbox "
                          "WHERE aggregateid = ANY(%s) ORDER BY seq", (keys,)).fetchall()


def run_python(code, contract_path, expect_kill=False):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(contract_path)],
                          capture_output=True, text=True, timeout=120)
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
    return proc


def consume_all(contract, wanted_ids, timeout_s=30):
    """Every event of `wanted_ids` a fresh consumer group receives from the beginning:
    (ids after deduplication, how many duplicates were dropped on the way)."""
    import time
    got = []
    deadline = time.monotonic() + timeout_s
    with open_bridge(contract, group="backbone-bridge-test-" + uuid.uuid4().hex[:8], from_beginning=True) as bridge:
        # until every wanted event arrived and the group has read the topic to its end (so a
        # duplicate published after the first copy has been seen too)
        while time.monotonic() < deadline and not (set(wanted_ids) <= set(got) and not sum(bridge.lag().values())):
            bridge.poll(lambda e: got.append(e.id), timeout_s=0.5)
        return got, bridge.duplicates


def test_an_ingest_writes_one_event_per_changed_series_in_its_transaction(local_env):
    contract = contract_of(local_env)
    syms = fresh_symbols(3)
    with open_backbone(contract) as bb:
        first = bb.upsert("bars", bars(syms, 5))
        again = bb.upsert("bars", bars(syms, 5))                   # unchanged: nothing to announce
        changed = bb.upsert("bars", bars(syms[:1], 2, bump=1.0))  # two rows of one series change
        with pytest.raises(IngestRejected):                       # a bad row: nothing written, nothing announced
            bb.upsert("bars", bars(syms[1:2], 1, bump=2.0) + [{"symbol": syms[1], "ts": "not a time"}])
    assert (first.events, again.events, changed.events) == (3, 0, 1)
    rows = outbox_rows(contract, syms)
    assert len(rows) == 4
    last = rows[-1]
    assert last[1:4] == ("bars", f"bars:{syms[0]}", "ingest.committed")
    payload = last[4]
    assert payload["event_id"] == last[0] and payload["symbol"] == syms[0]
    assert (payload["rows_inserted"], payload["rows_updated"]) == (0, 2)
    assert payload["first_ts"] == T0.isoformat() and payload["last_ts"] == (T0 + dt.timedelta(days=1)).isoformat()
    assert payload["run_id"] == changed.run_id


def test_kill_9_between_commit_and_publish_then_restart_delivers_each_event_once(local_env):
    contract = contract_of(local_env)
    path = local_env["outputs"]
    committed, doomed, dup = fresh_symbols(2), fresh_symbols(1), fresh_symbols(2)
    load = """
        import sys
        from pathlib import Path
        from backbone.contract import Sources, load_contract
        from backbone.data import open_backbone
        from backbone.data.rows import Bar
        import datetime as dt, os, signal
        contract = load_contract(Sources(outputs=Path(sys.argv[1])))
        T0 = dt.datetime(2024, 5, 6, tzinfo=dt.timezone.utc)
        rows = lambda syms: [Bar(s, T0 + dt.timedelta(days=d), 10, 11, 9, 10.5, 100, "test") for d in range(3) for s in syms]
    """
    # 1. an ingest commits, and its process dies before any relay ran
    run_python(load + f"""
        bb = open_backbone(contract)
        bb.upsert("bars", rows({committed!r}))
        os.kill(os.getpid(), signal.SIGKILL)
    """, path, expect_kill=True)
    # 2. an ingest dies mid-transaction (after writing its rows and events, before commit)
    run_python(load + f"""
        def rows_then_die():
            yield from rows({doomed!r})
            os.kill(os.getpid(), signal.SIGKILL)
        open_backbone(contract).ingest("bars", rows_then_die(), source="doomed")
    """, path, expect_kill=True)
    # 3. a relay dies after Kafka acknowledged a batch, before advancing its position past it
    run_python(load + f"""
        from backbone.events.relay import Relay
        bb = open_backbone(contract)
        bb.upsert("bars", rows({dup!r}))
        relay = Relay(contract)
        assert relay.acquire()
        class DiesAfterFlush:  # the real producer; the process dies once Kafka acknowledged the batch
            def __init__(self, inner):
                self.inner = inner
            def __getattr__(self, name):
                return getattr(self.inner, name)
            def flush(self, *a):
                assert self.inner.flush(*a) == 0
                os.kill(os.getpid(), signal.SIGKILL)
        relay.producer = DiesAfterFlush(relay.producer)
        relay.drain()
    """, path, expect_kill=True)

    assert outbox_rows(contract, doomed) == []  # rolled back: no rows, no events
    pending = outbox_rows(contract, committed + dup)
    assert len(pending) == 4 and not any(r[5] for r in pending)  # committed, none marked published yet

    with Relay(contract) as relay:  # the restart
        assert relay.acquire()
        relay.drain()
        assert relay.backlog().events == 0
    ids = [r[0] for r in pending]
    got, duplicates = consume_all(contract, ids)
    mine = [i for i in got if i in set(ids)]
    assert sorted(mine) == sorted(ids), "every committed event exactly once after deduplication"
    assert duplicates >= 2, "the killed relay's batch reached Kafka twice (the at-least-once half of the test)"
    assert all(r[5] for r in outbox_rows(contract, committed + dup))


def test_events_of_one_series_stay_in_commit_order(local_env):
    contract = contract_of(local_env)
    sym = fresh_symbols(1)
    with open_backbone(contract) as bb:
        runs = [bb.upsert("bars", bars(sym, 2, bump=float(i))).run_id for i in range(5)]
    with Relay(contract) as relay:
        assert relay.acquire()
        relay.drain()
    ids = [r[0] for r in outbox_rows(contract, sym)]
    got = []
    import time
    deadline = time.monotonic() + 30
    with open_bridge(contract, group="backbone-bridge-order-" + uuid.uuid4().hex[:8], from_beginning=True) as bridge:
        while time.monotonic() < deadline and len([g for g in got if g[0] in ids]) < 5:
            bridge.poll(lambda e: got.append((e.id, e.payload["run_id"], e.partition)), timeout_s=0.5)
    mine = [g for g in got if g[0] in ids]
    assert [g[1] for g in mine] == runs
    assert len({g[2] for g in mine}) == 1  # one key, one partition


@pytest.fixture(scope="module")
def kafka_outage_env(tmp_path_factory):
    """Its own single-broker environment: this module stops and starts Kafka."""
    from tests.integration.conftest import local_environment
    yield from local_environment(tmp_path_factory, "events-outage")


def test_kafka_down_during_ingest_commits_and_events_flow_when_it_returns(kafka_outage_env, tmp_path):
    from tests.integration.conftest import run_backbone
    env = kafka_outage_env
    doc = json.loads(env["outputs"].read_text())
    doc.setdefault("backbone", doc)
    strict = tmp_path / "outputs.json"
    target = doc["backbone"] if "backbone" in doc else doc
    target["data"] = {**target.get("data", {}), "outbox_max_age_s": 1}
    strict.write_text(json.dumps(doc))
    contract = Contract.model_validate(merge_outputs(json.loads(strict.read_text())))
    sym = fresh_symbols(2)
    stop = run_backbone("local", "stop", "kafka", "--state-dir", str(env["state_dir"]))
    assert stop.returncode == 0, stop.stderr
    try:
        with open_backbone(contract) as bb:
            result = bb.upsert("bars", bars(sym, 3))
        assert result.status == "ok" and result.events == 2  # the ingest does not need Kafka
        relay = run_backbone("events", "relay", "--outputs", str(strict), timeout=120)
        assert relay.returncode == 1 and "stay in the outbox" in relay.stderr, relay.stderr
        import time
        time.sleep(1.5)
        report = run_backbone("validate", "--outputs", str(strict), "--format", "json", timeout=120)
        checks = {c["name"]: c for c in json.loads(report.stdout)["checks"]}
        assert checks["outbox"]["status"] == "degraded", checks["outbox"]
    finally:
        start = run_backbone("local", "start", "kafka", "--state-dir", str(env["state_dir"]))
        assert start.returncode == 0, start.stderr
    relay = run_backbone("events", "relay", "--outputs", str(strict), timeout=120)
    assert relay.returncode == 0 and json.loads(relay.stdout)["backlog"] == 0, relay.stderr
    ids = [r[0] for r in outbox_rows(contract, sym)]
    got, _ = consume_all(contract, ids)
    assert set(ids) <= set(got)


def test_bootstrap_event_log_survives_restarts_and_keeps_positions(tmp_path):
    from tests.integration.conftest import run_backbone
    assert run_backbone("migrate", "apply", cwd=tmp_path).returncode == 0
    ingest = run_backbone("ingest", "--dimension", "bars", "--generate", "60", "--symbols", "4", cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    first = run_backbone("events", "tail", "--group", "bridge", "--max", "3", "--format", "json", cwd=tmp_path)
    rest = run_backbone("events", "tail", "--group", "bridge", "--idle-timeout", "0.5", "--format", "json", cwd=tmp_path)
    replay = run_backbone("events", "tail", "--from-beginning", "--group", "other", "--idle-timeout", "0.5",
                          "--format", "json", cwd=tmp_path)
    for proc in (first, rest, replay):
        assert proc.returncode == 0, proc.stderr
    seen = lambda proc: [json.loads(line) for line in proc.stdout.splitlines()]  # noqa: E731
    a, b, everything = seen(first), seen(rest), seen(replay)
    assert len(a) == 3 and len(b) == 1  # the position survived the process: the 4th event, once
    assert [e["offset"] for e in everything] == [e["offset"] for e in a + b] == sorted(e["offset"] for e in everything)
    assert {e["payload"]["symbol"] for e in everything} == {"SYM000", "SYM001", "SYM002", "SYM003"}
    assert "lag: log[0] 0" in rest.stderr
