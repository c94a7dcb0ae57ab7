"""tier switching: the active-tier record and checkpoints, the change log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tier_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", Json, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tier_changes",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("tbl", sa.String(64), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tier_changes")
    op.drop_table("tier_state")
