"""Prometheus metrics of `backbone serve`, and the HTTP endpoint that serves them.

Everything lives in the instance's own `CollectorRegistry` (never the global one), so two
servers in one process, or one test after another, never share a series. Values that are
owned elsewhere (the task states, the cache counters) are read at scrape time by a custom
collector rather than copied into gauges, so a scrape never shows a stale state.

`MetricsServer` is wsgiref in a daemon thread, quiet (no access log on stderr):
`/metrics` is the exposition format, `/supervision` the supervision snapshot as JSON.
"""
from __future__ import annotations

import json
import re
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..errors import ConfigError
from .supervisor import STATES

DIMENSIONS = ("bars", "trades", "macro")
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CACHE_COUNTERS = {"hits": "cache lookups answered from the cache",
                  "misses": "cache lookups that went to the store",
                  "evictions": "cache entries dropped to keep within the key budget"}
_PARTITION = re.compile(r"^(?P<topic>.*)\[(?P<partition>\d+)\]$")


class ServeMetrics:
    def __init__(self, relay: bool = True) -> None:
        self.registry = r = CollectorRegistry()
        self.ingest_rows = Counter("backbone_ingest_rows_total", "Rows received by ingests, by outcome",
                                   ["dimension", "outcome"], registry=r)
        self.ingest_runs = Counter("backbone_ingest_runs_total", "Ingest runs (one per file or generated batch)",
                                   ["dimension", "status"], registry=r)
        self.ingest_duration = Histogram("backbone_ingest_duration_seconds", "Wall time of one ingest",
                                         ["dimension"], buckets=DURATION_BUCKETS, registry=r)
        self.ingest_freshness = Gauge("backbone_ingest_freshness_seconds",
                                      "Seconds since the last successful ingest of the dimension",
                                      ["dimension"], registry=r)
        self.drop_files = Counter("backbone_drop_files_total", "Drop-directory files seen, by outcome",
                                  ["job", "outcome"], registry=r)
        self.relay = False
        if relay:  # the bootstrap tier has no relay: its outbox is the event log
            self.enable_relay()
        self.events_consumed = Counter("backbone_events_consumed_total", "Ingest events handled by the bridge",
                                       ["dimension"], registry=r)
        self.events_duplicates = Counter("backbone_events_duplicates_total",
                                         "Ingest events the bridge dropped as duplicates", registry=r)
        self.consumer_lag = Gauge("backbone_consumer_lag_events",
                                  "Events published but not yet handled by the bridge's consumer group",
                                  ["topic", "partition"], registry=r)
        self.cache_index_pruned = Counter("backbone_cache_index_pruned_total",
                                          "Expired entries dropped from the cache's index", registry=r)
        self.cache: dict[str, int] = {}
        self.supervisor = None  # set once built; the task states are read from it at scrape time
        self._last_ok: dict[str, float] = {}
        self._lock = threading.Lock()
        r.register(_Live(self))

    def enable_relay(self) -> None:
        """Register the relay's metrics (once; serve calls it when a tier switch gives it a relay)."""
        if self.relay:
            return
        r, self.relay = self.registry, True
        self.relay_published = Counter("backbone_relay_published_events_total",
                                       "Outbox events the relay published to Kafka", registry=r)
        self.outbox_backlog = Gauge("backbone_outbox_backlog_events", "Outbox events not yet published", registry=r)
        self.relay_lag = Gauge("backbone_relay_lag_seconds",
                               "Age of the oldest unpublished outbox event (0 when none)", registry=r)

    def ingested(self, dimension: str, result, status: str, seconds: float) -> None:
        """Record one ingest: `result` is an IngestResult (None when it failed outright)."""
        self.ingest_runs.labels(dimension, status).inc()
        self.ingest_duration.labels(dimension).observe(seconds)
        if result is not None:
            for outcome in ("inserted", "updated", "rejected"):
                self.ingest_rows.labels(dimension, outcome).inc(getattr(result, outcome))
            if status == "ok":
                self.ingest_rows.labels(dimension, "unchanged").inc(max(0, result.unchanged))
        if status == "ok":
            with self._lock:
                first = dimension not in self._last_ok
                self._last_ok[dimension] = time.time()
            if first:
                self.ingest_freshness.labels(dimension).set_function(lambda: time.time() - self._last_ok[dimension])

    def consumed(self, dimension: str) -> None:
        self.events_consumed.labels(dimension if dimension in DIMENSIONS else "other").inc()

    def lag(self, lags: dict[str, int]) -> None:
        for name, value in lags.items():
            m = _PARTITION.match(name)
            topic, partition = (m["topic"], m["partition"]) if m else (name, "")
            self.consumer_lag.labels(topic, partition).set(value)

    def backlog(self, events: int, oldest_age_s: float | None) -> None:
        self.outbox_backlog.set(events)
        self.relay_lag.set(oldest_age_s or 0.0)

    def cache_counts(self, counts: dict[str, int]) -> None:
        self.cache = {k: int(counts.get(k, 0) or 0) for k in CACHE_COUNTERS}


class _Live:
    """Read at scrape time: the cache counters and the supervisor's task states."""

    def __init__(self, metrics: ServeMetrics):
        self.metrics = metrics

    def collect(self):
        counts = self.metrics.cache
        for name, text in CACHE_COUNTERS.items():
            yield CounterMetricFamily(f"backbone_cache_{name}", f"Query cache: {text}", value=counts.get(name, 0))
        supervisor = self.metrics.supervisor
        if supervisor is None:
            return
        state = GaugeMetricFamily("backbone_task_state", "1 for the task's current state, else 0", labels=["task", "state"])
        restarts = CounterMetricFamily("backbone_task_restarts", "Restarts of a supervised task", labels=["task"])
        runs = CounterMetricFamily("backbone_task_runs", "Units of work a supervised task completed", labels=["task"])
        for name, task in supervisor.states.items():
            now = task.to_dict()
            for s in STATES:
                state.add_metric([name, s], 1.0 if now["state"] == s else 0.0)
            restarts.add_metric([name], now["restarts"])
            runs.add_metric([name], now["runs"])
        yield state
        yield restarts
        yield runs


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds up shutdown


class MetricsServer:
    """`/metrics` and `/supervision` on host:port (port 0: any free port, see `.port`)."""

    def __init__(self, metrics: ServeMetrics, snapshot: Callable[[], dict], host: str = "127.0.0.1", port: int = 0):
        exposition = make_wsgi_app(metrics.registry)

        def app(environ, start_response):
            path = environ.get("PATH_INFO") or "/"
            if path == "/supervision":
                body = (json.dumps(snapshot(), indent=2) + "\n").encode()
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            if path in ("/", "/metrics"):
                return exposition(environ, start_response)
            body = b"not found: try /metrics or /supervision\n"
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]

        try:
            self.server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_Quiet)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.host, self.port = host, self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="backbone-serve-metrics", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
