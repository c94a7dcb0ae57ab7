"""The backbone schema: market data (daily bars, intraday trades, macro events), the
ingest journal, the event outbox with what it needs (0003), and tier switching's record and change
log (0004), the relay's published position (0005). SQLAlchemy Core metadata, used by the drift check; the versioned
migrations under `revisions/versions` create exactly this.

Primary keys suit idempotent upserts (`INSERT ... ON CONFLICT DO UPDATE`) and include the
time column, which TimescaleDB requires of a hypertable's unique indexes.
"""
from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Column, DateTime, Double, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, func)
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

# 0003. The outbox follows Debezium's outbox event router conventions (id, aggregatetype,
# aggregateid, type, payload), so Kafka Connect can read the same table. `seq` orders it:
# on the bootstrap tier the outbox is the event log, and `seq` is each event's offset.
Seq = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
outbox = Table(
    "outbox", metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False),  # the event id consumers deduplicate by
    Column("aggregatetype", String(64), nullable=False),    # the dimension
    Column("aggregateid", String(128), nullable=False),     # the message key: dimension:symbol
    Column("type", String(64), nullable=False),
    Column("payload", Json, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # set by the relay of 0003-0004 once Kafka acknowledged; from 0005 on the relay keeps one
    # position instead (outbox_position) and leaves this NULL
    Column("published_at", DateTime(timezone=True)),
    UniqueConstraint("id", name="outbox_id_key"),
)

# 0005: the relay's published position: every committed outbox row with seq <= `seq` is in
# Kafka (events/relay.py); one row, name 'relay'
outbox_position = Table(
    "outbox_position", metadata,
    Column("name", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# where each consumer group of the bootstrap event log has got to (the next seq it reads)
consumer_positions = Table(
    "consumer_positions", metadata,
    Column("group_id", String(128), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# drop-directory files already ingested, by content, written in the ingest's own transaction
ingested_files = Table(
    "ingested_files", metadata,
    Column("checksum", String(64), primary_key=True),  # sha256 hex
    Column("dimension", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

# the bootstrap tier's in-process query cache adds its counters here when a client closes
# (Redis keeps the institutional tier's counters itself), so `validate` can judge them
cache_stats = Table(
    "cache_stats", metadata,
    Column("namespace", String(128), primary_key=True),
    Column("hits", BigInteger, nullable=False),
    Column("misses", BigInteger, nullable=False),
    Column("sets", BigInteger, nullable=False),
    Column("evictions", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# 0004, tier switching (docs/tiers.md). Named JSON values: in the bootstrap store, `active`
# (the active-tier record clients follow) and the switch's phase and checkpoints; in
# TimescaleDB, the copy's checkpoints (written in each chunk's own transaction).
tier_state = Table(
    "tier_state", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# the keys written while a switch (bootstrap store) or a reverse stream (TimescaleDB) runs,
# appended by triggers the switch installs: `key` is the row's primary key as a JSON array
tier_changes = Table(
    "tier_changes", metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("tbl", String(64), nullable=False),
    Column("key", Text, nullable=False),
)
