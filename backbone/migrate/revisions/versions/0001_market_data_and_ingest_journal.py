"""market data and ingest journal

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "daily_bars",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Double, nullable=False),
        sa.Column("high", sa.Double, nullable=False),
        sa.Column("low", sa.Double, nullable=False),
        sa.Column("close", sa.Double, nullable=False),
        sa.Column("volume", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "ts", name="daily_bars_pkey"),
    )
    op.create_table(
        "intraday_trades",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trade_id", sa.String(64), nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("size", sa.Double, nullable=False),
        sa.Column("exchange", sa.String(32)),
        sa.Column("source", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "ts", "trade_id", name="intraday_trades_pkey"),
    )
    op.create_table(
        "macro_events",
        sa.Column("calendar", sa.String(64), nullable=False),
        sa.Column("event", sa.String(256), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(8)),
        sa.Column("importance", sa.String(16)),
        sa.Column("actual", sa.Double),
        sa.Column("forecast", sa.Double),
        sa.Column("previous", sa.Double),
        sa.Column("source", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("calendar", "event", "ts", name="macro_events_pkey"),
    )
    op.create_table(
        "ingest_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("dimension", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("freshness_seconds", sa.Double),
        sa.Column("symbols", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("run_id", name="ingest_runs_pkey"),
    )


def downgrade() -> None:
    for table in ("ingest_runs", "macro_events", "intraday_trades", "daily_bars"):
        op.drop_table(table)
