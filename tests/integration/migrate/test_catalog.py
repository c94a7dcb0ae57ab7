"""The readiness check's cheap path against a real PostgreSQL: a freshly migrated database
is described exactly as `revisions/catalog.json` says (regenerate it with
`python -m backbone.migrate.catalog --write --outputs <an empty environment>` when the
migrations change), and the cheap answer agrees with Alembic's on every drift."""
import uuid

import psycopg
import pytest

from backbone.contract import Sources, load_contract
from backbone.migrate import catalog, ops
from backbone.migrate.check import fast_state, migrations_check

from ..pg import create_database, drop_database
from .test_migrate import pg_dsn


@pytest.fixture
def migrated_db(local_env):
    name = "catalog_" + uuid.uuid4().hex[:8]
    create_database(local_env, name)
    contract = load_contract(Sources(outputs=local_env["outputs"], extras=(f"TIMESCALEDB_DATABASE={name}",)))
    ops.apply(ops.engine_for(contract, duty="owner"), contract)
    yield contract, pg_dsn(local_env, name)
    drop_database(local_env, name)


def test_a_freshly_migrated_database_matches_the_stored_catalogue(migrated_db):
    contract, dsn = migrated_db
    want = catalog.expected()
    with psycopg.connect(dsn) as conn:
        live = catalog.describe(conn, "postgresql", want["tables"])
    assert catalog.matches(live, want["postgresql"]), (
        "backbone/migrate/revisions/catalog.json is stale: regenerate it with "
        "`python -m backbone.migrate.catalog --write --outputs <outputs of `backbone local up --bare`>`")
    state = fast_state(contract, 5)
    assert state is not None and state.current == want["head"] and not state.drift
    assert migrations_check(contract, 5).status == "ok"


@pytest.mark.parametrize("ddl, named", [
    ("ALTER TABLE daily_bars ALTER COLUMN source TYPE text", "daily_bars.source: type is TEXT"),
    ("ALTER TABLE macro_events ADD COLUMN note text", "macro_events.note: column not declared"),
    ("ALTER TABLE intraday_trades DROP COLUMN exchange", "intraday_trades.exchange: column missing"),
    ("ALTER TABLE intraday_trades ALTER COLUMN exchange SET NOT NULL", "intraday_trades.exchange: nullable"),
    ("ALTER TABLE ingest_runs ADD CONSTRAINT one_per_dimension UNIQUE (dimension)", "one_per_dimension"),
])
def test_every_drift_leaves_the_cheap_path_and_alembic_names_it(migrated_db, ddl, named):
    contract, dsn = migrated_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl)
    assert fast_state(contract, 5) is None  # the cheap path never says "no drift" here
    result = migrations_check(contract, 5)
    assert result.status == "down" and result.code == "schema_drift"
    assert any(named in d for d in result.details["drift"]), result.details["drift"]


def test_an_extra_index_is_not_drift_on_either_path(migrated_db):
    contract, dsn = migrated_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX by_close ON daily_bars (close)")
    assert fast_state(contract, 5) is not None
    assert migrations_check(contract, 5).status == "ok"
