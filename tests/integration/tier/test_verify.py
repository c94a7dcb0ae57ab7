"""Verification on a real bootstrap store and a real TimescaleDB (the session's local
environment): the same rows on both sides verify equal, edge values included (no false
mismatch), and each planted difference is listed with its key and kind (never a silent pass)."""
import datetime as dt
import json
import math
import sqlite3

import pytest
from backbone.data import open_backbone
from backbone.data.rows import Bar, MacroEvent, Trade
from backbone.data.store_sqlite import to_text
from backbone.tier.tables import TABLES
from backbone.tier import verify as verify_module
from backbone.tier.verify import listed, verify

from ..conftest import run_backbone

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, 34, 56, 789012, tzinfo=UTC)
EARLY = dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)  # chunk -1: floor on both sides
MARKET = ["daily_bars", "intraday_trades", "macro_events"]
SOURCE = "vendör|feed\\v2 ✓"


def bars() -> list[Bar]:
    rows = [Bar(f"S{i % 5}", T0 + dt.timedelta(days=i // 5), 10.0 + i / 7, 11.0 + i / 7, 9.0, 10.5, i, SOURCE)
            for i in range(400)]  # 80 days: several 30-day chunks
    return rows + [Bar("ZERO", T0, -0.0, 0.0, -0.0, 0.0, 0, "z"), Bar("OLD", EARLY, 5e-324, 1e300, 5e-324, 1.0, 1, "o"),
                   Bar("^GSPC", T0, 0.1, 0.30000000000000004, 0.1, 0.2, 2 ** 62, "é")]


def trades() -> list[Trade]:
    return [Trade(f"X{i % 3}", T0 + dt.timedelta(hours=7 * i, microseconds=i), f"t|{i}\\é", 1 / (i + 3),
                  -0.0 if i == 0 else i / 3, ("buy", "sell", None)[i % 3], SOURCE) for i in range(300)]


def macro() -> list[MacroEvent]:
    return [MacroEvent("US", f"CPI | y/y — € {i}", T0 + dt.timedelta(days=i), "USD" if i % 2 else None,
                       ("low", "high", None)[i % 3], None if i % 4 == 0 else i / 9, -0.0, None, "m|" + "é" * 3)
            for i in range(40)]


EDGE_MACRO = [("EDGE", "inf", T0, None, None, math.inf, -math.inf, 1e308, "edge"),
              ("EDGE", "tiny", T0, "EUR", "low", 5e-324, -5e-324, -0.0, "edge")]


def pg_insert(pg, table: str, rows: list[tuple]) -> None:
    """Plain SQL; json columns as the text they hold (jsonb spells it its own way)."""
    t = TABLES[table]
    values = ", ".join("%s::jsonb" if k == "json" else "%s" for k in t.kinds)
    with pg.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({', '.join(t.columns)}) VALUES ({values})", rows)


@pytest.fixture
def tiers(deployment):
    """The same market rows on both tiers: the bootstrap store written by the data API (plus
    infinities by SQL, which the API refuses), TimescaleDB by plain SQL from the same values."""
    migrated = run_backbone("migrate", "apply", "--outputs", str(deployment.outputs))
    assert migrated.returncode == 0, migrated.stderr
    with open_backbone(deployment.bootstrap()) as bb:
        for dim, rows in (("bars", bars()), ("trades", trades()), ("macro", macro())):
            bb.ingest(dim, rows, source="t")
    with sqlite3.connect(deployment.store) as lite:
        lite.executemany(f"INSERT INTO macro_events ({', '.join(TABLES['macro_events'].columns)}) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [(*r[:2], to_text(r[2]), *r[3:]) for r in EDGE_MACRO])
    with deployment.target() as pg:
        pg_insert(pg, "daily_bars", [(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, b.source)
                                     for b in bars()])
        pg_insert(pg, "intraday_trades", [(t.symbol, t.ts, t.trade_id, t.price, t.size, None, t.source, t.side)
                                          for t in trades()])
        pg_insert(pg, "macro_events", [(m.calendar, m.event, m.ts, m.currency, m.importance, m.actual, m.forecast,
                                        m.previous, m.source) for m in macro()] + EDGE_MACRO)
    return deployment


def found(result) -> set:
    return {(t.table, m.kind, m.key) for t in result.tables for m in t.mismatches}


def test_the_same_rows_verify_equal_edge_values_included(tiers):
    seen = []
    with tiers.target() as pg:
        result = verify(tiers.store, pg, tables=MARKET, progress=lambda table, rows: seen.append((table, rows)))
    assert result.equal, result.to_dict()
    by_name = {t.table: t for t in result.tables}
    assert by_name["daily_bars"].rows_source == by_name["daily_bars"].rows_target == 403
    assert by_name["intraday_trades"].rows_target == 300 and by_name["macro_events"].rows_target == 42
    assert by_name["daily_bars"].chunks >= 4  # 30-day chunks of the hypertable, and the one before 1970
    assert by_name["daily_bars"].chunk_seconds == 30 * 86400 and by_name["intraday_trades"].chunk_seconds == 86400
    assert ("daily_bars", 403) in seen and result.rows_per_s > 0
    json.dumps(result.to_dict())  # a report


def test_each_planted_difference_is_listed_with_its_key_and_kind(tiers):
    later = T0 + dt.timedelta(days=1)
    with tiers.target() as pg:
        pg.execute("UPDATE daily_bars SET close = close + 1e-9 WHERE symbol = 'S2' AND ts = %s", (later,))
        pg.execute("DELETE FROM intraday_trades WHERE trade_id = %s", ("t|7\\é",))
        pg_insert(pg, "daily_bars", [("NEW", T0, 1.0, 1.0, 1.0, 1.0, 1, "x")])
        pg.execute("UPDATE macro_events SET previous = 'NaN' WHERE event = 'CPI | y/y — € 3'")  # NULL in SQLite
        pg.execute("UPDATE intraday_trades SET ts = ts + interval '1 microsecond' WHERE trade_id = %s", ("t|11\\é",))
        pg.execute("UPDATE daily_bars SET source = 'vendör|feed\\v2 ✓ ' WHERE symbol = 'S3' AND ts = %s", (T0,))
        result = verify(tiers.store, pg, tables=MARKET)
    assert not result.equal
    iso = dt.datetime.isoformat
    t7, t11 = trades()[7], trades()[11]
    assert found(result) == {
        ("daily_bars", "different", ("S2", iso(later))),
        ("daily_bars", "extra", ("NEW", iso(T0))),
        ("daily_bars", "different", ("S3", iso(T0))),
        ("intraday_trades", "missing", (t7.symbol, iso(t7.ts), t7.trade_id)),
        ("macro_events", "different", ("US", "CPI | y/y — € 3", iso(T0 + dt.timedelta(days=3)))),
        ("intraday_trades", "missing", (t11.symbol, iso(t11.ts), t11.trade_id)),
        ("intraday_trades", "extra", (t11.symbol, iso(t11.ts + dt.timedelta(microseconds=1)), t11.trade_id)),
    }
    by_name = {t.table: t for t in result.tables}
    assert by_name["intraday_trades"].rows_target == 299 and by_name["daily_bars"].rows_target == 404
    assert by_name["daily_bars"].mismatched_chunks and not any(t.error for t in result.tables)
    report = json.loads(json.dumps(result.to_dict()))  # what `tier status` keeps
    assert report["equal"] is False and report["tables"][0]["mismatches"][0]["kind"] in ("different", "extra")


def test_many_mismatches_in_bounded_memory_every_one_in_the_listing(tiers, tmp_path, monkeypatch):
    # a verdict keeps the first LISTED in memory and counts them all; the chunks are drilled a
    # group of at most GROUP_ROWS rows at a time; the listing file has every mismatch
    with tiers.target() as pg:
        pg.execute("DELETE FROM daily_bars WHERE symbol IN ('S0', 'S1')")  # 160 rows over every chunk
        pg.execute("UPDATE intraday_trades SET price = price * 2 WHERE symbol = 'X0'")  # 100 rows
        whole = verify(tiers.store, pg, tables=MARKET)
        monkeypatch.setattr(verify_module, "LISTED", 7)
        monkeypatch.setattr(verify_module, "GROUP_ROWS", 50)  # a chunk or a few at a time
        listing = tmp_path / "store.mismatches.jsonl"
        small = verify(tiers.store, pg, tables=MARKET, listing=listing)
    counts = {t.table: t.mismatch_count for t in small.tables}
    assert counts == {"daily_bars": 160, "intraday_trades": 100, "macro_events": 0}
    assert [len(t.mismatches) for t in small.tables] == [7, 7, 0] and not small.equal
    lines = list(listed(listing))
    assert len(lines) == 260 and {(t, m.kind, m.key) for t, m in lines} == found(whole)
    assert {m.kind for _, m in lines} == {"missing", "different"}
    report = small.to_dict()  # what `tier status` keeps: bounded, with the full count
    assert len(report["tables"][0]["mismatches"]) == 7 and report["tables"][0]["mismatch_count"] == 160


def test_a_chunk_missing_on_one_side_and_a_missing_table_are_never_equal(tiers):
    with tiers.target("owner") as pg:  # the schema's owner: the application may not drop tables
        pg.execute("DELETE FROM macro_events WHERE calendar = 'EDGE'")
        pg.execute("DROP TABLE ingested_files")
        result = verify(tiers.store, pg, tables=["macro_events", "ingested_files"])
    macro_verdict, files = result.tables
    assert {m.kind for m in macro_verdict.mismatches} == {"missing"} and len(macro_verdict.mismatches) == 2
    assert files.error and "ingested_files" in files.error and not files.equal and not result.equal


def test_event_log_and_journal_verify_equal_when_equal_and_json_differences_show(deployment):
    """ingest_runs and outbox (json columns) read back from the bootstrap store and written to
    TimescaleDB as jsonb: different text, same values. The relay's published_at is not compared."""
    assert run_backbone("migrate", "apply", "--outputs", str(deployment.outputs)).returncode == 0
    with open_backbone(deployment.bootstrap()) as bb:
        bb.ingest("bars", bars()[:50], source="feed|1")
        bb.ingest("trades", trades()[:30], source="feed\\2", checksum="ab" * 32)
    json_tables = ["ingest_runs", "outbox", "ingested_files"]
    with sqlite3.connect(deployment.store) as lite, deployment.target() as pg:
        lite.execute("UPDATE ingest_runs SET metadata = '{\"z\": 1.0, \"a\": [1e2, \"x|y\"]}' WHERE rowid = 1")
        lite.commit()
        for table in json_tables:  # what a copy does: timestamps parsed, json as its text
            t = TABLES[table]
            rows = lite.execute(f"SELECT {', '.join(t.columns)} FROM {table}").fetchall()
            pg_insert(pg, table, [tuple(dt.datetime.fromisoformat(v).replace(tzinfo=UTC) if k == "ts" and v else v
                                        for v, k in zip(row, t.kinds)) for row in rows])
        counts = [lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in json_tables]
        pg.execute("UPDATE outbox SET published_at = now()")
        assert pg.execute("SELECT metadata::text FROM ingest_runs WHERE metadata ? 'z'").fetchone()[0] == \
            '{"a": [100, "x|y"], "z": 1.0}'  # jsonb's own spelling
        result = verify(deployment.store, pg, tables=json_tables)
        assert result.equal, result.to_dict()
        assert [t.rows_source for t in result.tables] == [t.rows_target for t in result.tables] == counts
        assert counts[0] == 2 and counts[1] >= 8 and counts[2] == 1  # a run per ingest; an event per series
        event = pg.execute("SELECT id FROM outbox ORDER BY seq LIMIT 1").fetchone()[0]
        pg.execute("UPDATE outbox SET payload = jsonb_set(payload, '{dimension}', '\"other\"') WHERE id = %s", (event,))
        pg.execute("UPDATE ingest_runs SET symbols = '[]' WHERE dimension = 'trades'")
        result = verify(deployment.store, pg, tables=json_tables)
    assert {(t, k) for t, k, _ in found(result)} == {("outbox", "different"), ("ingest_runs", "different")}
    assert ("outbox", "different", (event,)) in found(result)
