"""The metrics of `serve`: their own registry, the values read at scrape time, and the HTTP
endpoint (port 0 allowed) serving /metrics and /supervision."""
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from backbone.data.api import IngestResult
from backbone.errors import ConfigError
from backbone.serve.metrics import MetricsServer, ServeMetrics
from backbone.serve.supervisor import Supervisor, TaskSpec


async def _idle(ctx):
    pass


def scrape(metrics: ServeMetrics) -> dict:
    from prometheus_client import generate_latest
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_live_in_their_own_registry():
    ServeMetrics()
    ServeMetrics()  # a second one in the same process: no duplicate series
    assert REGISTRY.get_sample_value("backbone_ingest_rows_total", {"dimension": "bars", "outcome": "inserted"}) is None


def test_ingests_cache_lag_and_task_states():
    metrics = ServeMetrics()
    result = IngestResult("r1", "bars", received=10, inserted=6, updated=2, rejected=0)
    metrics.ingested("bars", result, "ok", 0.2)
    metrics.ingested("bars", IngestResult("r2", "bars", received=3, rejected=1), "rejected", 0.01)
    metrics.ingested("trades", None, "failed", 0.05)
    metrics.consumed("bars")
    metrics.consumed("nonsense")
    metrics.lag({"ingest.events[0]": 4, "ingest.events[1]": 0})
    metrics.backlog(7, None)
    metrics.cache_counts({"hits": 5, "misses": 2, "sets": 2, "evictions": 1})
    sup = Supervisor([TaskSpec("job:a", "ingest", _idle)])
    sup.states["job:a"].set(state="backoff", restarts=3, runs=2)
    metrics.supervisor = sup
    found = scrape(metrics)
    assert found[("backbone_ingest_rows_total", (("dimension", "bars"), ("outcome", "inserted")))] == 6
    assert found[("backbone_ingest_rows_total", (("dimension", "bars"), ("outcome", "unchanged")))] == 2
    assert found[("backbone_ingest_rows_total", (("dimension", "bars"), ("outcome", "rejected")))] == 1
    assert found[("backbone_ingest_runs_total", (("dimension", "bars"), ("status", "rejected")))] == 1
    assert found[("backbone_ingest_runs_total", (("dimension", "trades"), ("status", "failed")))] == 1
    assert found[("backbone_ingest_duration_seconds_count", (("dimension", "bars"),))] == 2
    assert 0 <= found[("backbone_ingest_freshness_seconds", (("dimension", "bars"),))] < 60
    assert ("backbone_ingest_freshness_seconds", (("dimension", "trades"),)) not in found  # never succeeded
    assert found[("backbone_events_consumed_total", (("dimension", "other"),))] == 1
    assert found[("backbone_consumer_lag_events", (("partition", "0"), ("topic", "ingest.events")))] == 4
    assert found[("backbone_outbox_backlog_events", ())] == 7 and found[("backbone_relay_lag_seconds", ())] == 0
    assert found[("backbone_cache_hits_total", ())] == 5 and found[("backbone_cache_evictions_total", ())] == 1
    assert found[("backbone_task_state", (("state", "backoff"), ("task", "job:a")))] == 1
    assert found[("backbone_task_state", (("state", "running"), ("task", "job:a")))] == 0
    assert found[("backbone_task_restarts_total", (("task", "job:a"),))] == 3
    assert found[("backbone_task_runs_total", (("task", "job:a"),))] == 2


def test_no_relay_metrics_without_a_relay():
    assert not [name for name, _ in scrape(ServeMetrics(relay=False)) if "relay" in name or "outbox" in name]


def test_the_endpoint_on_any_free_port():
    metrics = ServeMetrics()
    server = MetricsServer(metrics, lambda: {"status": "running"}, port=0)
    try:
        assert server.port > 0
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
            assert b"backbone_cache_hits_total" in response.read()
        with urllib.request.urlopen(f"{server.url}/supervision", timeout=5) as response:
            assert response.headers["Content-Type"] == "application/json"
            assert json.loads(response.read()) == {"status": "running"}
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{server.url}/nope", timeout=5)
        assert info.value.code == 404
        with pytest.raises(ConfigError, match=f"--metrics-port {server.port}: cannot listen"):
            MetricsServer(metrics, dict, port=server.port)  # taken
    finally:
        server.close()
    assert not server.thread.is_alive()
