"""Before the first cut-over the bootstrap store is the active tier, for every client whose
contract names it: an application opened from the institutional contract must not write to
TimescaleDB then (its writes would be off the active tier, and the switch would refuse
them as extra rows). On the session's real TimescaleDB and a real bootstrap store."""
import datetime as dt
import json
import sqlite3

from backbone.data import open_backbone
from backbone.data.rows import Bar

from ..conftest import run_backbone
from .test_switch import active, seed, target_count, tier

T0 = dt.datetime(2023, 6, 1, tzinfo=dt.timezone.utc)


def early_bars(n: int) -> list[Bar]:
    return [Bar("EARLY", T0 + dt.timedelta(days=i), 1.0, 2.0, 0.5, 1.5, 10 + i, "early") for i in range(n)]


def store_rows(deployment, symbol: str) -> int:
    with sqlite3.connect(deployment.store) as conn:
        return conn.execute("SELECT count(*) FROM daily_bars WHERE symbol = ?", (symbol,)).fetchone()[0]


def target_rows(deployment, symbol: str) -> int:
    with deployment.target() as pg:
        if not pg.execute("SELECT to_regclass('daily_bars') IS NOT NULL").fetchone()[0]:
            return 0
        return pg.execute("SELECT count(*) FROM daily_bars WHERE symbol = %s", (symbol,)).fetchone()[0]


def test_institutional_clients_write_to_the_bootstrap_store_until_the_first_cutover(deployment):
    seed(deployment, bars=400, trades=200)
    migrated = run_backbone("migrate", "apply", "--outputs", str(deployment.outputs))  # as after `pulumi up`
    assert migrated.returncode == 0, migrated.stderr
    assert active(deployment) is None  # never switched

    with open_backbone(deployment.institutional()) as app:
        assert app.tier == "bootstrap"
        result = app.ingest("bars", early_bars(5), source="early-app")
        assert result.inserted == 5
        assert len(app.bars(["EARLY"], T0, T0 + dt.timedelta(days=10))) == 5  # reads its own writes
    assert store_rows(deployment, "EARLY") == 5  # on the active tier...
    assert target_rows(deployment, "EARLY") == 0  # ...and nowhere else

    status = json.loads(tier(deployment, "status", "--format", "json").stdout)
    assert status["active_tier"].startswith("bootstrap")
    validated = run_backbone("validate", "--outputs", str(deployment.outputs), "--format", "json")
    checks = {c["name"]: c for c in json.loads(validated.stdout)["checks"]}
    fresh = checks["freshness.bars"]
    assert fresh["status"] == "ok" and fresh["details"]["last_run"]["source"] == "early-app", fresh  # judged where the writes went

    app = open_backbone(deployment.institutional())  # stays open across the cut-over
    try:
        done = tier(deployment, "switch")
        assert done.returncode == 0, done.stdout + done.stderr  # no "extra" rows on the target
        assert active(deployment)["tier"] == "institutional"
        assert target_rows(deployment, "EARLY") == 5
        assert target_count(deployment, "daily_bars") == 405
        app.ingest("bars", [Bar("LATE", T0, 1.0, 2.0, 0.5, 1.5, 1, "late")], source="late-app")
        assert app.tier == "institutional"  # followed the cut-over
    finally:
        app.close()
    assert target_rows(deployment, "LATE") == 1


def test_an_institutional_contract_whose_store_does_not_exist_stays_on_its_services(deployment):
    migrated = run_backbone("migrate", "apply", "--outputs", str(deployment.outputs))
    assert migrated.returncode == 0, migrated.stderr
    deployment.store.unlink()  # an institutional deployment that never ran on bootstrap
    for leftover in deployment.store.parent.glob("backbone.db-*"):
        leftover.unlink()
    with open_backbone(deployment.institutional()) as app:
        assert app.tier == "institutional"
        app.ingest("bars", early_bars(3), source="day-one")
    assert target_rows(deployment, "EARLY") == 3
    assert not deployment.store.exists()  # no store was made up on the way
