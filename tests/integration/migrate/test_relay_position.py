"""Revision 0005 (the relay's published position) on existing data, both ways, on the real
PostgreSQL and on SQLite: the upgrade puts the position below the oldest unpublished event,
the downgrade marks every event at or below it published."""
import sqlite3

import psycopg
import pytest
from alembic import command

from backbone.contract import Sources, load_contract
from backbone.events.relay import backlog
from backbone.migrate import ops

from .test_migrate import pg_dsn, scratch_db  # noqa: F401 (a fixture)


def to(engine, revision: str, down: bool = False) -> None:
    with engine.connect() as conn:
        cfg = ops.alembic_config()
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()


EVENT = ("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) "
         "VALUES (%s, 'bars', 'bars:X', 'ingest.committed', '{}')")


def test_upgrade_from_0004_keeps_every_unpublished_event_and_downgrade_marks_the_published(local_env, scratch_db):  # noqa: F811
    contract = load_contract(Sources(outputs=local_env["outputs"], extras=(f"TIMESCALEDB_DATABASE={scratch_db}",)))
    engine = ops.engine_for(contract, duty="owner")
    to(engine, "0004")
    with psycopg.connect(pg_dsn(local_env, scratch_db), autocommit=True) as pg:
        for i in range(1, 6):
            pg.execute(EVENT, (f"e{i}",))
        # 1, 2 and 4 published (4 committed late, after 3, and went first); 3 and 5 not yet
        pg.execute("UPDATE outbox SET published_at = now() WHERE seq IN (1, 2, 4)")
        to(engine, "head")
        assert pg.execute("SELECT seq FROM outbox_position WHERE name = 'relay'").fetchone() == (2,)
        assert pg.execute("SELECT to_regclass('outbox_pending')").fetchone() == (None,)
        assert backlog(pg).events == 3  # 3 and 5, and 4 once more (consumers deduplicate by id)

        pg.execute("UPDATE outbox_position SET seq = 4")  # the relay published up to 4
        to(engine, "0004", down=True)
        published = pg.execute("SELECT seq FROM outbox WHERE published_at IS NOT NULL ORDER BY seq").fetchall()
        assert [s for s, in published] == [1, 2, 3, 4]
        assert pg.execute("SELECT to_regclass('outbox_pending') IS NOT NULL, "
                          "to_regclass('outbox_position')").fetchone() == (True, None)
        to(engine, "head")
        assert pg.execute("SELECT seq FROM outbox_position").fetchone() == (4,)
    engine.dispose()


@pytest.mark.parametrize("events", [0, 3])
def test_sqlite_event_log_goes_to_0005_and_back(tmp_path, events):
    contract = load_contract(Sources(extras=(f"BACKBONE_BOOTSTRAP_STORE={tmp_path}/store.db",)))
    engine = ops.engine_for(contract)
    to(engine, "0004")
    with sqlite3.connect(tmp_path / "store.db") as lite:
        for i in range(events):
            lite.execute(EVENT.replace("%s", "?"), (f"e{i}",))
    to(engine, "head")
    to(engine, "0004", down=True)
    to(engine, "head")
    with sqlite3.connect(tmp_path / "store.db") as lite:
        assert lite.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone() == (events,)
        assert lite.execute("SELECT count(*) FROM outbox_position").fetchone() == (1,)
