"""The active-tier record and how a client picks its tier from it (no services)."""
import json
import sqlite3

import pytest

from backbone.contract import Contract
from backbone.data.follow import bootstrap_fence, contract_for
from backbone.data.active_tier import ActiveTier, RecordReader, TierMoved, TierUnreachable, read_active, write_active

SCHEMA = "CREATE TABLE tier_state (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)"


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as conn:
        conn.execute(SCHEMA)
    return path


def test_each_flip_bumps_the_epoch_and_readers_see_it(store):
    conn = sqlite3.connect(store, isolation_level=None)
    assert read_active(conn) is None
    first = write_active(conn, "institutional", {"outputs": "/x.json"}, None)
    second = write_active(conn, "bootstrap", first.target, first)
    assert (first.epoch, second.epoch) == (1, 2)
    reader = RecordReader(store)
    assert reader.read() == second
    reader.close()


def test_a_missing_store_or_an_unmigrated_one_means_no_record(tmp_path):
    assert RecordReader(tmp_path / "absent.db").read() is None
    assert not (tmp_path / "absent.db").exists()  # reading never creates the file
    conn = sqlite3.connect(tmp_path / "old.db")
    assert read_active(conn) is None


def test_the_bootstrap_fence_refuses_a_write_once_the_record_moved(store):
    conn = sqlite3.connect(store, isolation_level=None)
    bootstrap_fence(conn)  # no record: writes go on
    write_active(conn, "institutional", {"outputs": "/x.json"}, None)
    with pytest.raises(TierMoved) as moved:
        bootstrap_fence(conn)
    assert moved.value.active.tier == "institutional"


def test_contract_for_follows_the_record(tmp_path):
    boot = Contract(tier="bootstrap", bootstrap={"store": str(tmp_path / "s.db")})
    assert contract_for(boot, None) is boot
    assert contract_for(boot, ActiveTier("bootstrap", 2, {}, "now")) is boot
    missing = tmp_path / "gone.json"
    with pytest.raises(TierUnreachable, match=str(missing)):
        contract_for(boot, ActiveTier("institutional", 1, {"outputs": str(missing)}, "now"))
    outputs = tmp_path / "inst.json"
    outputs.write_text(json.dumps({"contract_version": 1, "tier": "institutional", "platform": "local",
                                   "timescale": {"host": "127.0.0.1", "password": "pw-planted-123"}}))
    target = contract_for(boot, ActiveTier("institutional", 1, {"outputs": str(outputs)}, "now"))
    assert target.tier == "institutional" and target.bootstrap == boot.bootstrap
    back = contract_for(target, ActiveTier("bootstrap", 2, {"outputs": str(outputs)}, "now"))
    assert back.tier == "bootstrap" and back.bootstrap == boot.bootstrap
