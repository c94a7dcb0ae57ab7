"""the relay's published position: outbox.xid, outbox_position, the (xid, seq) index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

The relay no longer marks each row published: it advances one position, (xid, seq), over
rows whose inserting transaction (`xid`, recorded per row by a column default on
PostgreSQL) is older than every transaction still running (docs/events.md). Rows published
before this revision get xid 0 and sit at or below the initial position; unpublished ones
get this migration's xid, so the relay publishes them next. On SQLite (the bootstrap event
log, never relayed) `xid` stays NULL and the position is unused.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

XID = "(pg_current_xact_id()::text)::bigint"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("outbox", sa.Column("xid", sa.BigInteger()))
    op.create_table(
        "outbox_position",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("xid", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("settled_xid", sa.BigInteger(), nullable=False),
        sa.Column("settled_seq", sa.BigInteger(), nullable=False),
    )
    if postgres:
        op.execute("UPDATE outbox SET xid = 0 WHERE published_at IS NOT NULL")
        op.execute(f"UPDATE outbox SET xid = {XID} WHERE published_at IS NULL")
        op.execute(f"ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT {XID}")
        op.execute("INSERT INTO outbox_position (name, xid, seq, published_at, settled_xid, settled_seq) "
                   "SELECT 'relay', 0, s, now(), 0, s FROM "
                   "(SELECT coalesce(max(seq), 0) AS s FROM outbox WHERE xid = 0) m")
    op.drop_index("outbox_pending", table_name="outbox")
    op.create_index("outbox_relay", "outbox", ["xid", "seq"])


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_index("outbox_pending", "outbox", ["published_at", "seq"])
    op.drop_index("outbox_relay", table_name="outbox")
    if postgres:  # rows at or below the position were published
        op.execute("UPDATE outbox o SET published_at = coalesce(p.published_at, now()) FROM outbox_position p "
                   "WHERE p.name = 'relay' AND o.published_at IS NULL AND (o.xid, o.seq) <= (p.xid, p.seq)")
    op.drop_table("outbox_position")
    op.drop_column("outbox", "xid")
