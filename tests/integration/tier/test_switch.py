"""Tier switching on real TimescaleDB, Redis and Kafka (the session's local environment)
from a real bootstrap store: switch and rollback under a live writer, kill -9 in each phase
and rerun, refusals, and the active-tier record library clients follow."""
import datetime as dt
import json
from pathlib import Path
import signal
import sqlite3

import pytest

from backbone.data import open_backbone
from backbone.data.rows import Bar, MacroEvent, Trade

from ..conftest import run_backbone

T0 = dt.datetime(2023, 1, 2, tzinfo=dt.timezone.utc)


def seed(deployment, bars: int = 3000, trades: int = 3000) -> None:
    with open_backbone(deployment.bootstrap()) as bb:
        bb.ingest("bars", [Bar(f"S{i % 40}", T0 + dt.timedelta(days=i // 40), 1.0 + i, 2.0 + i, 0.5, 1.5 + i, i, "seed")
                           for i in range(bars)], source="seed")
        bb.ingest("trades", [Trade(f"S{i % 7}", T0 + dt.timedelta(seconds=i, microseconds=i), f"t{i}", 1 / (i + 3),
                                   2.0, "buy" if i % 2 else None, "seed") for i in range(trades)], source="seed")
        bb.ingest("macro", [MacroEvent("US", f"cpi|{i}", T0 + dt.timedelta(days=i), "USD", "high",
                                       None if i % 3 else 1.5, -0.0, 2.0 + i, "seed")
                            for i in range(20)], source="seed")


def tier(deployment, *args, env=None):
    return run_backbone("tier", *args, "--outputs", str(deployment.outputs), env=env, timeout=300)


def active(deployment) -> dict | None:
    with sqlite3.connect(deployment.store) as conn:
        row = conn.execute("SELECT value FROM tier_state WHERE name = 'active'").fetchone()
    return json.loads(row[0]) if row else None


def target_count(deployment, table: str) -> int:
    with deployment.target() as pg:
        return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def source_count(deployment, table: str) -> int:
    with sqlite3.connect(deployment.store) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_switch_moves_everything_and_clients_follow_without_reopening(deployment):
    seed(deployment)
    client = open_backbone(deployment.bootstrap())  # an application, opened before the switch
    assert client.tier == "bootstrap"
    done = tier(deployment, "switch")
    assert done.returncode == 0, done.stderr
    assert "switched" in done.stdout and active(deployment)["tier"] == "institutional"
    for table in ("daily_bars", "intraday_trades", "macro_events", "outbox"):
        assert target_count(deployment, table) == source_count(deployment, table), table
    status = json.loads(tier(deployment, "status", "--format", "json").stdout)
    assert status["last_verification"]["mismatches"] == 0 and status["phase"] == "switched"
    # the client's next write lands on TimescaleDB, with no reopen and no code change
    client.upsert("bars", [Bar("AFTER", T0, 1.0, 1.0, 1.0, 1.0, 1, "app")])
    assert client.tier == "institutional"
    assert client.bars(["AFTER"], T0, T0 + dt.timedelta(days=1)).rows[0].source == "app"
    client.close()
    with deployment.target() as pg:
        assert pg.execute("SELECT count(*) FROM daily_bars WHERE symbol = 'AFTER'").fetchone()[0] == 1
    assert source_count(deployment, "daily_bars") == 3000  # not written to the old tier
    again = tier(deployment, "switch")
    assert again.returncode == 0 and "already switched" in again.stdout


def test_rollback_brings_back_the_writes_made_on_the_institutional_tier(deployment):
    seed(deployment, 500, 500)
    assert tier(deployment, "switch").returncode == 0
    with open_backbone(deployment.institutional()) as bb:
        bb.upsert("bars", [Bar("INST", T0 + dt.timedelta(days=d), 3.0, 3.0, 3.0, 3.0, d, "inst") for d in range(25)])
        bb.upsert("bars", [Bar("S1", T0, 9.0, 9.0, 9.0, 9.0, 9, "changed")])  # an update of a copied row
    back = tier(deployment, "rollback")
    assert back.returncode == 0, back.stderr
    assert active(deployment)["tier"] == "bootstrap"
    with open_backbone(deployment.bootstrap()) as bb:
        assert len(bb.bars(["INST"], T0, T0 + dt.timedelta(days=30)).rows) == 25
        assert bb.bars(["S1"], T0, T0 + dt.timedelta(hours=1)).rows[0].source == "changed"
    with open_backbone(deployment.institutional()) as bb:  # a client of the institutional contract follows too
        assert bb.tier == "bootstrap"


def test_rollback_without_a_switch_is_bad_input(deployment):
    seed(deployment, 10, 10)
    result = tier(deployment, "rollback")
    assert result.returncode == 2 and "nothing to roll back" in result.stderr


@pytest.mark.parametrize("point", ["migrate", "track", "copy-chunk", "copy", "catchup", "verify", "cutover-flip", "replay"])
def test_kill_9_in_each_phase_then_rerun_finishes(deployment, point):
    seed(deployment, 120_000 if point == "copy-chunk" else 2000, 2000)
    killed = tier(deployment, "switch", env={"BACKBONE_TIER_FAULT": f"kill:{point}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    record = active(deployment)
    # exactly one tier is active: the record is one row, and it flips only with the cut-over's commit
    assert (record or {"tier": "bootstrap"})["tier"] == ("institutional" if point == "replay" else "bootstrap")
    rerun = tier(deployment, "switch")
    assert rerun.returncode == 0, rerun.stderr
    assert active(deployment)["tier"] == "institutional"
    assert target_count(deployment, "daily_bars") == source_count(deployment, "daily_bars")
    assert target_count(deployment, "intraday_trades") == source_count(deployment, "intraday_trades")


def test_a_target_holding_different_data_is_reported_and_never_switched(deployment):
    seed(deployment, 200, 10)
    assert tier(deployment, "switch", "--stop-after", "migrate").returncode == 0
    with deployment.target() as pg:  # the same key, another value
        pg.execute("INSERT INTO daily_bars VALUES ('S3', %s, 7, 7, 7, 7, 7, 'other')", (T0,))
    refused = tier(deployment, "switch")
    assert refused.returncode == 1
    assert "verification found 1 mismatched" in refused.stderr and "S3" in refused.stderr
    listing = Path(f"{deployment.store}.mismatches.jsonl")  # every mismatched key, beside the store
    assert str(listing) in refused.stderr.replace("\n", "")
    assert [json.loads(line)["key"][0] for line in listing.read_text().splitlines()] == ["S3"]
    assert active(deployment) is None  # never switched


def test_unreachable_target_flips_nothing(deployment, tmp_path):
    seed(deployment, 10, 10)
    doc = json.loads(deployment.outputs.read_text())
    doc["backbone"]["timescale"]["port"] = 1  # nothing listens there
    deployment.outputs.write_text(json.dumps(doc))
    result = tier(deployment, "switch")
    assert result.returncode == 1 and "migrating the target failed" in result.stderr
    assert active(deployment) is None
    assert doc["backbone_secrets"]["timescale"]["password"] not in result.stderr + result.stdout


def test_plan_writes_nothing_and_measures(deployment):
    seed(deployment, 5000, 100)
    before = deployment.store.read_bytes()
    planned = tier(deployment, "plan", "--format", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["rows"]["daily_bars"] == 5000 and plan["rows"]["intraday_trades"] == 100
    assert plan["events"] == source_count(deployment, "outbox") > 0
    assert plan["sample_rows_per_s"] > 0 and plan["estimate_s"] > 0
    assert deployment.store.read_bytes() == before and active(deployment) is None


def test_serve_mirrors_and_complete_stops_the_reverse_stream_keeping_the_store(deployment):
    from backbone.tier.reverse import mirror_once
    seed(deployment, 300, 10)
    assert mirror_once(deployment.institutional()) is None  # no switch yet: nothing to mirror
    assert tier(deployment, "switch").returncode == 0
    with open_backbone(deployment.institutional()) as bb:
        bb.upsert("bars", [Bar("MIRROR", T0, 1.0, 1.0, 1.0, 1.0, 1, "inst")])
    assert mirror_once(deployment.institutional()) >= 2  # the bar and its event
    with sqlite3.connect(deployment.store) as conn:
        assert conn.execute("SELECT source FROM daily_bars WHERE symbol = 'MIRROR'").fetchone() == ("inst",)
    with open_backbone(deployment.institutional()) as bb:
        bb.upsert("bars", [Bar("LAST", T0, 1.0, 1.0, 1.0, 1.0, 1, "inst")])
    done = tier(deployment, "complete")
    assert done.returncode == 0 and "completed" in done.stdout, done.stderr
    with deployment.target() as pg:
        assert pg.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'tier_track'").fetchone()[0] == 0
    with sqlite3.connect(deployment.store) as conn:  # kept, with the last writes mirrored
        assert conn.execute("SELECT count(*) FROM daily_bars WHERE symbol = 'LAST'").fetchone()[0] == 1
    assert json.loads(tier(deployment, "status", "--format", "json").stdout)["phase"] == "completed"
    assert "already completed" in tier(deployment, "complete").stdout


def test_rollback_with_the_institutional_tier_down_refuses_unless_forced(deployment):
    from backbone.tier.reverse import mirror_once
    seed(deployment, 100, 10)
    assert tier(deployment, "switch").returncode == 0
    with open_backbone(deployment.institutional()) as bb:
        bb.upsert("bars", [Bar("SEEN", T0, 1.0, 1.0, 1.0, 1.0, 1, "inst")])
    mirror_once(deployment.institutional())
    doc = json.loads(deployment.outputs.read_text())
    doc["backbone"]["timescale"]["port"] = 1  # the institutional tier is gone
    deployment.outputs.write_text(json.dumps(doc))
    refused = tier(deployment, "rollback")
    assert refused.returncode == 1 and "unreachable" in refused.stderr and "--force" in refused.stderr
    assert active(deployment)["tier"] == "institutional"
    forced = tier(deployment, "rollback", "--force", "--format", "json")
    assert forced.returncode == 0, forced.stderr
    report = json.loads(forced.stdout)
    assert report["forced"] and report["not_on_bootstrap"]["mirrored_through_change"] >= 2
    assert active(deployment)["tier"] == "bootstrap"
    with sqlite3.connect(deployment.store) as conn:  # what the reverse stream had mirrored is there
        assert conn.execute("SELECT count(*) FROM daily_bars WHERE symbol = 'SEEN'").fetchone()[0] == 1


def test_switch_again_after_a_rollback_catches_up_what_was_written_meanwhile(deployment):
    seed(deployment, 200, 10)
    assert tier(deployment, "switch").returncode == 0
    assert tier(deployment, "rollback").returncode == 0
    with open_backbone(deployment.bootstrap()) as bb:  # written on the bootstrap tier after the rollback
        bb.upsert("bars", [Bar("BACK", T0, 1.0, 1.0, 1.0, 1.0, 1, "boot"), Bar("S2", T0, 5.0, 5.0, 5.0, 5.0, 5, "boot")])
    again = tier(deployment, "switch")
    assert again.returncode == 0, again.stderr
    assert active(deployment)["tier"] == "institutional" and active(deployment)["epoch"] == 3
    with deployment.target() as pg:
        assert pg.execute("SELECT source FROM daily_bars WHERE symbol IN ('BACK', 'S2') AND ts = %s",
                          (T0,)).fetchall() == [("boot",), ("boot",)]
    assert tier(deployment, "complete").returncode == 0
    refused = tier(deployment, "rollback")
    assert refused.returncode == 2 and "completed" in refused.stderr


def test_a_client_that_cannot_reach_the_new_tier_says_so(deployment):
    from backbone.data.active_tier import TierUnreachable
    seed(deployment, 20, 5)
    client = open_backbone(deployment.bootstrap())
    assert tier(deployment, "switch").returncode == 0
    doc = json.loads(deployment.outputs.read_text())
    secret = doc["backbone_secrets"]["timescale"]["password"]
    doc["backbone"]["timescale"]["port"] = 1
    deployment.outputs.write_text(json.dumps(doc))
    with pytest.raises(TierUnreachable) as raised:
        client.upsert("bars", [Bar("LATE", T0, 1.0, 1.0, 1.0, 1.0, 1, "app")])
    assert "switched to the institutional tier" in str(raised.value) and "cannot reach" in str(raised.value)
    assert secret not in str(raised.value)
    deployment.outputs.unlink()  # the contract itself gone: named in the error
    with pytest.raises(TierUnreachable, match=str(deployment.outputs)):
        open_backbone(deployment.bootstrap())


def test_a_bootstrap_store_from_before_the_tier_tables_is_migrated_first(deployment):
    seed(deployment, 50, 5)
    with sqlite3.connect(deployment.store) as conn:  # as a store last migrated by 0003 left it
        conn.execute("DROP TABLE tier_state")
        conn.execute("DROP TABLE tier_changes")
        conn.execute("DROP TABLE outbox_position")  # and 0005's
        conn.execute("CREATE INDEX outbox_pending ON outbox (published_at, seq)")
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    status = tier(deployment, "status", "--format", "json")
    assert status.returncode == 0 and json.loads(status.stdout)["phase"] == "none"
    done = tier(deployment, "switch")
    assert done.returncode == 0, done.stderr
    assert "the bootstrap store to head" in done.stderr and active(deployment)["tier"] == "institutional"
