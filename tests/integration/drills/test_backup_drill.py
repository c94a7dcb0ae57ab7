"""The Timescale backup / restore drill against the session's real TimescaleDB (migrated by
`backbone local up`, so the market-data tables are hypertables): pg_dump, pg_restore into a
scratch database between timescaledb_pre_restore() and _post_restore(), rows and chunks
compared, objectives."""
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from backbone.contract import Contract, merge_outputs
from backbone.drills.backup import BackupDrillError, backup_restore_drill
from ..pg import url


def contract_of(local_env, **changes) -> Contract:
    doc = merge_outputs(local_env["contract"])
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    for path, value in changes.items():
        section, key = path.split("__")
        doc[section] = {**doc.get(section, {}), key: value}
    return Contract.model_validate(doc)


def connect(contract: Contract):
    return psycopg.connect(url(contract), autocommit=True)


def insert_bars(contract: Contract, n: int) -> str:
    """n daily bars under a symbol no other test uses; returns the symbol."""
    symbol = "BK" + uuid.uuid4().hex[:8].upper()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with connect(contract) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO daily_bars (symbol, ts, open, high, low, close, volume, source) "
                "VALUES (%s, %s, 1, 2, 0.5, 1.5, 100, 'drill-test')",
                [(symbol, start + timedelta(days=i)) for i in range(n)])
    return symbol


def scratch_databases(contract: Contract) -> list[str]:
    with connect(contract) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'backbone_restore_%'")]


def test_fresh_dump_restores_with_equal_counts_and_objectives(local_env, tmp_path):
    contract = contract_of(local_env)
    insert_bars(contract, 5)
    drill = backup_restore_drill(contract, tmp_path / "dumps")

    assert drill.dump_taken and drill.dump_path.parent == tmp_path / "dumps"
    assert drill.dump_path.stat().st_mode & 0o777 == 0o600  # the dump is the data
    source, restored = drill.tables["daily_bars"]
    assert source >= 5 and restored == source
    # backbone's whole schema is compared, not just the table we wrote to
    assert {"daily_bars", "intraday_trades", "macro_events", "ingest_runs"} <= set(drill.tables)
    assert drill.ok
    assert drill.dump_age_s < 60
    assert drill.rto_met == (drill.restore_s <= contract.objectives.timescale.rto_s) is True
    assert drill.rpo_met == (drill.dump_age_s <= contract.objectives.timescale.rpo_s) is True
    assert drill.passed
    assert drill.scratch_database.startswith("backbone_restore_")
    assert drill.scratch_database not in scratch_databases(contract)  # dropped afterwards

    data, markdown = drill.to_dict(), drill.to_markdown()
    assert data["tables"]["daily_bars"] == {"source_rows": source, "restored_rows": source, "match": True}
    assert data["ok"] and data["rto_met"] and data["rpo_met"]
    password = contract.timescale.password.get_secret_value()
    assert password not in str(data) and password not in markdown
    assert "| daily_bars |" in markdown and "RPO: dump age" in markdown


def test_hypertables_with_compressed_chunks_restore_through_timescales_procedure(local_env, tmp_path):
    from backbone.serviceconfig import TIMESCALEDB_VERSION
    contract = contract_of(local_env)
    symbol = "BK" + uuid.uuid4().hex[:8].upper()
    start = datetime(2019, 1, 1, tzinfo=timezone.utc)  # chunks (30 days each) no other test writes to
    with connect(contract) as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO daily_bars (symbol, ts, open, high, low, close, volume, source) "
                            "VALUES (%s, %s, 1, 2, 0.5, 1.5, 100, 'drill-test') ON CONFLICT DO NOTHING",
                            [(symbol, start + timedelta(days=i)) for i in range(120)])
    with psycopg.connect(url(contract, "owner"), autocommit=True) as conn:  # compression is the table owner's
        compressed = conn.execute(
            "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('daily_bars', "
            "newer_than => '2018-11-01'::timestamptz, older_than => '2019-06-01'::timestamptz) c").fetchone()[0]
    assert compressed >= 4  # every chunk of those 120 days

    drill = backup_restore_drill(contract, tmp_path)

    assert drill.timescaledb == TIMESCALEDB_VERSION
    assert set(drill.hypertables) == {"daily_bars", "intraday_trades", "macro_events"}
    chunks, restored = drill.hypertables["daily_bars"]
    assert chunks >= 5 and restored == chunks  # 120 days in 30-day chunks, and whatever else is there
    source, restored_rows = drill.tables["daily_bars"]
    assert source >= 120 and restored_rows == source  # compressed rows counted back as well
    assert drill.passed
    markdown = drill.to_markdown()
    assert f"TimescaleDB {TIMESCALEDB_VERSION}" in markdown and "timescaledb_pre_restore()" in markdown
    assert drill.to_dict()["hypertables"]["daily_bars"]["match"] is True


def test_old_given_dump_misses_the_rpo_and_shows_rows_written_since(local_env, tmp_path):
    contract = contract_of(local_env)
    insert_bars(contract, 3)
    first = backup_restore_drill(contract, tmp_path)
    assert first.ok
    dump = first.dump_path
    two_hours_ago = time.time() - 7200
    os.utime(dump, (two_hours_ago, two_hours_ago))
    insert_bars(contract, 2)  # written after the dump: the exposure the RPO is about

    strict = contract_of(local_env, objectives__timescale={"rto_s": 0.001, "rpo_s": 60})
    drill = backup_restore_drill(strict, tmp_path / "unused", dump=dump)

    assert not drill.dump_taken and drill.dump_path == dump
    assert 7190 < drill.dump_age_s < 7300
    assert drill.rpo_met is False
    assert drill.rto_met is False  # no restore finishes within a millisecond
    source, restored = drill.tables["daily_bars"]
    assert source - restored == 2 and not drill.ok
    assert not (tmp_path / "unused").exists()  # a given dump: nothing new written
    assert drill.scratch_database not in scratch_databases(contract)
    # the same old dump under the default objectives (24 h RPO) is recent enough
    assert backup_restore_drill(contract, tmp_path, dump=dump).rpo_met is True


def test_wrong_password_is_a_clear_error_without_the_password(local_env, tmp_path):
    wrong = "Wr0ng-" + uuid.uuid4().hex
    contract = contract_of(local_env, timescale__password=wrong)
    with pytest.raises(BackupDrillError) as info:
        backup_restore_drill(contract, tmp_path)
    message = str(info.value)
    assert "password authentication failed" in message
    assert wrong not in message
    assert contract_of(local_env).timescale.password.get_secret_value() not in message
    assert not list(tmp_path.iterdir())  # failed before any dump was written


def test_missing_dump_file_is_named(local_env, tmp_path):
    contract = contract_of(local_env)
    with pytest.raises(BackupDrillError, match="no dump file at .*nothing.dump"):
        backup_restore_drill(contract, tmp_path, dump=tmp_path / "nothing.dump")
