"""The reads, as parameterised SQL for each store, returning JSON-ready rows (the cache
keeps exactly what the store returned; `api` turns them into typed rows).

Every dimension is filtered by its series column (bars and trades: `symbol`; macro events:
`calendar`) and a half-open time window [start, end).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from .rows import Dimension


@dataclass(frozen=True, slots=True)
class Candle:
    symbol: str
    bucket: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int


def _in(dialect: str, column: str) -> str:
    # PostgreSQL binds a list as an array; SQLite reads the list from JSON
    return f"{column} = ANY(%(series)s)" if dialect == "postgresql" else \
        f"{column} IN (SELECT value FROM json_each(:series))"


def _p(dialect: str, name: str) -> str:
    return f"%({name})s" if dialect == "postgresql" else f":{name}"


def param(store, name: str) -> str:
    """A named placeholder in the store's driver style."""
    return _p(store.dialect, name)


def _params(dialect: str, series: list[str], **values: Any) -> dict[str, Any]:
    return {"series": series if dialect == "postgresql" else json.dumps(series), **values}


def window(store, dim: Dimension, series: list[str], start: dt.datetime, end: dt.datetime,
           limit: int) -> list[list]:
    d = store.dialect
    statement = (f"SELECT {', '.join(dim.columns)} FROM {dim.table} WHERE {_in(d, dim.key[0])} "
                 f"AND ts >= {_p(d, 'start')} AND ts < {_p(d, 'end')} ORDER BY {dim.key[0]}, ts LIMIT {_p(d, 'limit')}")
    ts_at = dim.columns.index("ts")
    return [_jsonable(row, ts_at, d) for row in store.query(statement, _params(d, series, start=start, end=end,
                                                                                  limit=limit))]


def latest(store, dim: Dimension, series: list[str]) -> list[list]:
    d, cols, first = store.dialect, ", ".join(dim.columns), dim.key[0]
    if d == "postgresql":
        statement = (f"SELECT DISTINCT ON ({first}) {cols} FROM {dim.table} WHERE {_in(d, first)} "
                     f"ORDER BY {first}, ts DESC")
    else:
        statement = (f"SELECT {cols} FROM {dim.table} b WHERE {_in(d, first)} AND ts = "
                     f"(SELECT max(ts) FROM {dim.table} WHERE {first} = b.{first}) ORDER BY {first}")
    ts_at = dim.columns.index("ts")
    return [_jsonable(row, ts_at, d) for row in store.query(statement, _params(d, series))]


def candles(store, series: list[str], start: dt.datetime, end: dt.datetime, limit: int) -> list[list]:
    """1-minute OHLCV from trades: the continuous aggregate on TimescaleDB (real-time, so the
    newest minutes are included), the same numbers by query on SQLite."""
    d = store.dialect
    if d == "postgresql":
        statement = ("SELECT symbol, bucket, open, high, low, close, volume, trades FROM candles_1m "
                     "WHERE symbol = ANY(%(series)s) AND bucket >= %(start)s AND bucket < %(end)s "
                     "ORDER BY symbol, bucket LIMIT %(limit)s")
    else:
        statement = (
            "SELECT symbol, bucket, open, max(price), min(price), close, sum(size), count(*) FROM ("
            " SELECT symbol, substr(ts, 1, 16) || ':00.000000' AS bucket, price, size,"
            " first_value(price) OVER w AS open,"
            " last_value(price) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS close"
            " FROM intraday_trades WHERE symbol IN (SELECT value FROM json_each(:series))"
            " AND ts >= :start AND ts < :end"
            " WINDOW w AS (PARTITION BY symbol, substr(ts, 1, 16) ORDER BY ts, trade_id))"
            " GROUP BY symbol, bucket ORDER BY symbol, bucket LIMIT :limit")
    return [_jsonable(row, 1, d) for row in store.query(statement, _params(d, series, start=start, end=end,
                                                                            limit=limit))]


def _jsonable(row: tuple, ts_at: int, dialect: str) -> list:
    values = list(row)
    ts = values[ts_at]
    if dialect == "postgresql":
        values[ts_at] = ts.astimezone(dt.timezone.utc).isoformat()
    else:
        values[ts_at] = dt.datetime.fromisoformat(ts).replace(tzinfo=dt.timezone.utc).isoformat()
    return values
