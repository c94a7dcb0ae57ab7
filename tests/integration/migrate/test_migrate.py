"""`backbone migrate` against the session's real TimescaleDB (PostgreSQL 15 + the extension):
schema, hypertables, chunk intervals, retention and compression policies, and drift."""
import json
import uuid

import psycopg
import pytest

from backbone.contract import Sources, load_contract
from backbone.migrate import catalog, ops

from ..conftest import run_backbone
from ..pg import create_database, drop_database, owner_url

HEAD = catalog.expected()["head"]
SERVICES = ("--extra", "REDIS_HOST=127.0.0.1", "--extra", "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9")


def pg_dsn(local_env, database=None):
    """The schema owner's URL (migrations and policy changes are the owner's), the CA as sslrootcert."""
    return owner_url(local_env, database)


@pytest.fixture
def scratch_db(local_env):
    """A fresh database on the session's PostgreSQL (`local up` already migrated the main one)."""
    name = "scratch_" + uuid.uuid4().hex[:8]
    create_database(local_env, name)
    yield name
    drop_database(local_env, name)


def migrate(*args, outputs=None, extra=()):
    src = ("--outputs", str(outputs)) if outputs else SERVICES
    return run_backbone("migrate", *args, *src, *extra)


def test_plan_apply_check_and_out_of_band_column_change_on_postgresql(local_env, scratch_db):
    outputs = local_env["outputs"]

    def migrate(*args):
        return run_backbone("migrate", *args, "--outputs", str(outputs),
                            "--extra", f"TIMESCALEDB_DATABASE={scratch_db}")
    plan = migrate("plan")
    assert plan.returncode == 0, plan.stderr
    assert "CREATE TABLE daily_bars" in plan.stdout and "CREATE TABLE ingest_runs" in plan.stdout
    with psycopg.connect(pg_dsn(local_env, scratch_db)) as conn:  # plan wrote nothing
        assert conn.execute("SELECT to_regclass('daily_bars'), to_regclass('alembic_version')").fetchone() == (None, None)

    pending = migrate("check")
    assert pending.returncode == 1 and "pending migration 0001" in pending.stdout

    applied = migrate("apply", "--format", "json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["writes"] > 0
    again = migrate("apply", "--format", "json")
    assert json.loads(again.stdout)["writes"] == 0  # up to date: no DDL at all

    ok = migrate("check")
    assert ok.returncode == 0, ok.stdout
    assert f"Schema at {HEAD}, no drift" in ok.stdout and "plain PostgreSQL" not in ok.stdout

    with psycopg.connect(pg_dsn(local_env, scratch_db), autocommit=True) as conn:
        conn.execute("ALTER TABLE daily_bars ALTER COLUMN source TYPE text")
        conn.execute("ALTER TABLE macro_events ADD COLUMN note text")
    drift = migrate("check")
    assert drift.returncode == 1
    assert "daily_bars.source: type is TEXT, declared VARCHAR(64)" in drift.stdout
    assert "macro_events.note: column not declared" in drift.stdout


def test_timescaledb_missing_is_degraded_unless_the_contract_accepts_plain_postgresql(local_env, scratch_db):
    """A database whose schema is at head but that never got the extension (created by
    hand, or on a server without TimescaleDB)."""
    base = ("--outputs", str(local_env["outputs"]), "--extra", f"TIMESCALEDB_DATABASE={scratch_db}")
    contract = load_contract(Sources(outputs=local_env["outputs"], extras=(f"TIMESCALEDB_DATABASE={scratch_db}",)))
    ops.upgrade_schema_only(ops.engine_for(contract, duty="owner"))
    proc = run_backbone("migrate", "check", *base)
    assert proc.returncode == 0
    assert "timescaledb extension not installed" in proc.stdout + proc.stderr
    assert run_backbone("migrate", "check", "--strict", *base).returncode == 1
    accepted = run_backbone("migrate", "check", *base, "--extra", "BACKBONE_TIMESCALE_REQUIRE_TIMESCALEDB=false")
    assert accepted.returncode == 0 and "plain PostgreSQL (accepted by the contract)" in accepted.stdout


@pytest.fixture
def timescale(local_env, scratch_db):
    """The session's TimescaleDB, through a scratch database of its own."""
    class Target:
        url = pg_dsn(local_env, scratch_db)
    return Target


def jobs_of(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute(
            "SELECT hypertable_name || ':' || proc_name, config ->> "
            "CASE proc_name WHEN 'policy_retention' THEN 'drop_after' ELSE 'compress_after' END "
            "FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL").fetchall())


def test_hypertables_and_policies_on_real_timescaledb(timescale):
    url = ("--extra", f"TIMESCALEDB_URL={timescale.url}")
    applied = migrate("apply", "--format", "json", extra=url)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with psycopg.connect(timescale.url, autocommit=True) as conn:
        hyper = {r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")}
        assert hyper == {"daily_bars", "intraday_trades", "macro_events"}
        chunks = dict(conn.execute("SELECT hypertable_name, time_interval::text FROM "
                                   "timescaledb_information.dimensions WHERE hypertable_schema = 'public'").fetchall())
    assert chunks == {"daily_bars": "30 days", "intraday_trades": "1 day", "macro_events": "90 days"}
    jobs = jobs_of(timescale.url)
    assert jobs["intraday_trades:policy_retention"] == "90 days"
    assert jobs["intraday_trades:policy_compression"] == "7 days"
    assert "macro_events:policy_compression" not in jobs
    assert json.loads(migrate("apply", "--format", "json", extra=url).stdout)["writes"] == 0
    assert migrate("check", extra=url).returncode == 0

    with psycopg.connect(timescale.url, autocommit=True) as conn:
        conn.execute("SELECT remove_retention_policy('daily_bars')")
        conn.execute("SELECT add_retention_policy('daily_bars', INTERVAL '30 days')")
    drift = migrate("check", extra=url)
    assert drift.returncode == 1
    assert "daily_bars: retention is 30 days, declared 3650 days" in drift.stdout
    plan = migrate("plan", extra=url)
    assert "add_retention_policy(CAST('daily_bars' AS regclass), make_interval(days => 3650))" in plan.stdout
    assert migrate("apply", extra=url).returncode == 0
    assert migrate("check", extra=url).returncode == 0


def test_a_policy_removed_or_a_chunk_interval_changed_by_hand_is_drift(timescale):
    url = ("--extra", f"TIMESCALEDB_URL={timescale.url}")
    assert migrate("apply", extra=url).returncode == 0
    with psycopg.connect(timescale.url, autocommit=True) as conn:
        conn.execute("SELECT remove_compression_policy('intraday_trades')")
        conn.execute("SELECT set_chunk_time_interval('macro_events', INTERVAL '7 days')")
    drift = migrate("check", extra=url)
    assert drift.returncode == 1
    assert "intraday_trades: compression after is none, declared 7 days" in drift.stdout
    assert "macro_events: chunk interval is 7 days, declared 90 days" in drift.stdout
    assert migrate("apply", extra=url).returncode == 0
    assert migrate("check", extra=url).returncode == 0
    assert jobs_of(timescale.url)["intraday_trades:policy_compression"] == "7 days"


def test_a_policy_changed_in_the_contract_is_drift_until_applied(timescale, tmp_path):
    url = ("--extra", f"TIMESCALEDB_URL={timescale.url}")
    assert migrate("apply", extra=url).returncode == 0
    contract = {"contract_version": 1, "tier": "institutional", "platform": "docker",
                "timescale": {"policies": {"daily_bars": {"chunk_interval_days": 30, "retention_days": 400,
                                                          "compress_after_days": 90}}},
                "redis": {}, "kafka": {}}
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(contract))
    drift = run_backbone("migrate", "check", "--outputs", str(outputs), *url)
    assert drift.returncode == 1
    assert "daily_bars: retention is 3650 days, declared 400 days" in drift.stdout
    # tables the contract leaves out keep whatever they have: not drift
    assert "intraday_trades" not in drift.stdout
    assert run_backbone("migrate", "apply", "--outputs", str(outputs), *url).returncode == 0
    assert run_backbone("migrate", "check", "--outputs", str(outputs), *url).returncode == 0
    assert migrate("apply", extra=url).returncode == 0  # back to the defaults for other tests


def test_bootstrap_store_gets_the_same_schema(tmp_path):
    store = tmp_path / "store.db"
    env = ("--extra", f"BACKBONE_BOOTSTRAP_STORE={store}")
    assert run_backbone("migrate", "check", *env).returncode == 1
    applied = run_backbone("migrate", "apply", *env)
    assert applied.returncode == 0, applied.stderr
    import sqlite3
    tables = {r[0] for r in sqlite3.connect(store).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"daily_bars", "intraday_trades", "macro_events", "ingest_runs", "alembic_version"} <= tables
    assert run_backbone("migrate", "check", *env).returncode == 0


def test_migrate_needs_only_the_database(local_env):
    """A contract with Timescale settings alone (no Redis, no Kafka) is enough to migrate."""
    only_db = ("--extra", f"TIMESCALEDB_URL={pg_dsn(local_env)}")
    assert run_backbone("migrate", "apply", *only_db).returncode == 0
    check = run_backbone("migrate", "check", *only_db)
    assert check.returncode == 0, check.stdout + check.stderr
