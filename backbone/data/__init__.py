"""What the deployment carries: market data (daily bars, intraday trades, macro events)
and the ingest journal, the same API on both tiers; each ingest writes its events to the
outbox in its own transaction (`backbone.events`).

- `rows`: typed rows and their validation; `api`: `open_backbone(contract)` (ingest,
  upsert, windowed reads, latest bars, candles, all reads through the query cache);
- `store_timescale` / `store_sqlite`: the two stores; `reads`: the read SQL; `cache`: the
  query cache (Redis or in-process) and its policy; `files` / `generate`: ingest sources;
- `active_tier` / `follow`: the active-tier record and how clients follow it through a write fence.
"""
from .api import Backbone, IngestRejected, IngestResult, QueryResult, open_backbone

__all__ = ["Backbone", "IngestRejected", "IngestResult", "QueryResult", "open_backbone"]
