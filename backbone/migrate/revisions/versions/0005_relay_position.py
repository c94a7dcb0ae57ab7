"""the relay's published position: outbox_position (one row per relay), outbox_pending dropped

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

The relay no longer marks each outbox row published: it keeps one position, the highest
`seq` up to which every committed row is in Kafka (docs/events.md, "The relay"). The upgrade
puts it just below the oldest unpublished row, so nothing unpublished is skipped; rows above
it that an earlier relay had already published (ones that committed late) go to Kafka once
more, which consumers absorb by deduplicating on the event id. `outbox.published_at` stays,
unwritten from here on, and the downgrade fills it in for every row at or below the position,
so the per-row relay of 0004 does not publish them again. On SQLite (the bootstrap event log,
never relayed) the position row exists but nothing reads it.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_position",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute("INSERT INTO outbox_position (name, seq) SELECT 'relay', coalesce("
               "(SELECT min(seq) - 1 FROM outbox WHERE published_at IS NULL), (SELECT max(seq) FROM outbox), 0)")
    op.drop_index("outbox_pending", table_name="outbox")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE outbox o SET published_at = p.updated_at FROM outbox_position p "
                   "WHERE p.name = 'relay' AND o.published_at IS NULL AND o.seq <= p.seq")
    op.create_index("outbox_pending", "outbox", ["published_at", "seq"])
    op.drop_table("outbox_position")
