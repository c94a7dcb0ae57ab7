"""The backbone schema: market data (daily bars, intraday trades, macro events) and the
ingest journal. SQLAlchemy Core metadata, used by the drift check; the versioned
migrations under `revisions/versions` create exactly this.

Primary keys suit idempotent upserts (`INSERT ... ON CONFLICT DO UPDATE`) and include the
time column, which TimescaleDB requires of a hypertable's unique indexes.
"""
from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Double, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
Json = JSON().with_variant(JSONB(), "postgresql")

daily_bars = Table(
    "daily_bars", metadata,
    Column("symbol", String(32), primary_key=True),
    Column("ts", DateTime(timezone=True), primary_key=True),
    Column("open", Double, nullable=False),
    Column("high", Double, nullable=False),
    Column("low", Double, nullable=False),
    Column("close", Double, nullable=False),
    Column("volume", BigInteger, nullable=False),
    Column("source", String(64), nullable=False),
)

intraday_trades = Table(
    "intraday_trades", metadata,
    Column("symbol", String(32), primary_key=True),
    Column("ts", DateTime(timezone=True), primary_key=True),
    Column("trade_id", String(64), primary_key=True),
    Column("price", Double, nullable=False),
    Column("size", Double, nullable=False),
    Column("exchange", String(32)),
    Column("source", String(64), nullable=False),
    Column("side", String(4)),  # buy | sell (0002)
)

macro_events = Table(
    "macro_events", metadata,
    Column("calendar", String(64), primary_key=True),
    Column("event", String(256), primary_key=True),
    Column("ts", DateTime(timezone=True), primary_key=True),
    Column("currency", String(8)),
    Column("importance", String(16)),
    Column("actual", Double),
    Column("forecast", Double),
    Column("previous", Double),
    Column("source", String(64), nullable=False),
)

ingest_runs = Table(
    "ingest_runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("dimension", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("freshness_seconds", Double),
    Column("symbols", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
    # 0002: what an ingest run did with the rows it received (`rows`), and where they came from
    Column("source", String(256)),
    Column("rows_inserted", Integer, nullable=False, server_default="0"),
    Column("rows_updated", Integer, nullable=False, server_default="0"),
    Column("rows_rejected", Integer, nullable=False, server_default="0"),
)
