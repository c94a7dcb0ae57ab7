"""trade side; ingest journal counts and source

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intraday_trades", sa.Column("side", sa.String(4)))
    op.add_column("ingest_runs", sa.Column("source", sa.String(256)))
    for name in ("rows_inserted", "rows_updated", "rows_rejected"):
        op.add_column("ingest_runs", sa.Column(name, sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    for name in ("rows_rejected", "rows_updated", "rows_inserted", "source"):
        op.drop_column("ingest_runs", name)
    op.drop_column("intraday_trades", "side")
