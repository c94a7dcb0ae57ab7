"""`backbone serve` as a process, on the session's real services (TimescaleDB, Redis, 3 Kafka
brokers) and on the embedded bootstrap tier: metrics scraped over HTTP, a failing job that
restarts while the others carry on, SIGTERM leaving no task behind, a drop-directory file
ingested exactly once across a restart."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backbone.contract import Contract, merge_outputs
from backbone.local.services import free_port
from ..pg import url

pytestmark = pytest.mark.integration

BOUND_S = 10  # --shutdown-timeout
GOOD_BARS = "symbol,ts,open,high,low,close,volume\n{s},2024-03-04T00:00:00Z,10,11,9,10.5,1000\n" \
            "{s},2024-03-05T00:00:00Z,10.5,12,10,11,1200\n"
BAD_BARS = "symbol,ts,open,high,low,close,volume\n{s},2024-03-06T00:00:00Z,10,9,11,10.5,1000\n"  # high < low


def outputs_copy(local_env, tmp_path) -> tuple:
    """The session's outputs with a consumer group and cache namespace of this test's own."""
    doc = json.loads(local_env["outputs"].read_text())
    tag = uuid.uuid4().hex[:8]
    doc["backbone"]["data"] = {"consumer_group": f"backbone-bridge-serve-{tag}"}
    doc["backbone"]["redis"]["cache_policy"] = {**doc["backbone"]["redis"].get("cache_policy", {}),
                                                "namespace": f"emp:cache:serve-test:{tag}"}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    return path, Contract.model_validate(merge_outputs(doc))


class Serve:
    """`backbone serve` in a subprocess, with its metrics endpoint; always killed at the end."""

    def __init__(self, cwd, *args, port=None):
        self.port, self.cwd = port or free_port(), cwd
        self.snapshot = cwd / "snapshot.json"
        self.stderr_path = cwd / f"serve-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backbone", "serve", *args, "--metrics-port", str(self.port),
                 "--snapshot", str(self.snapshot), "--shutdown-timeout", str(BOUND_S)],
                cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            return response.read().decode()

    def metrics(self) -> dict:
        try:
            return samples(self.get("/metrics"))
        except OSError:
            assert self.proc.poll() is None, f"serve exited ({self.proc.returncode}):\n{self.stderr}"
            return {}  # not listening yet

    def wait_for(self, condition, what: str, within_s: float = 90) -> dict:
        deadline = time.monotonic() + within_s
        while True:
            found = self.metrics()
            if found and condition(found):
                return found
            assert time.monotonic() < deadline, f"{what}: not within {within_s} s\n{self.stderr}"
            time.sleep(0.3)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=BOUND_S + 20)  # the bound, plus interpreter exit

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    """The sum of `name` over the samples carrying these labels."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


def assert_clean_shutdown(serve: Serve, code: int) -> dict:
    assert code == 0, serve.stderr
    snap = json.loads(serve.snapshot.read_text())
    shutdown = snap["shutdown"]
    assert shutdown["orphaned_tasks"] == 0 and shutdown["threads_left"] == 0, shutdown
    assert shutdown["cancelled"] == [] and shutdown["reason"] == "SIGTERM"
    assert snap["status"] == "stopped"
    assert {t["state"] for t in snap["tasks"].values()} == {"stopped"}, snap["tasks"]
    return snap


def test_serve_runs_jobs_relay_and_bridge_restarts_a_failing_job_and_stops_cleanly(local_env, tmp_path):
    outputs, contract = outputs_copy(local_env, tmp_path)
    symbol = f"SV{uuid.uuid4().hex[:6].upper()}"
    drop = tmp_path / "in" / "bars"
    drop.mkdir(parents=True)
    (drop / "good.csv").write_text(GOOD_BARS.format(s=symbol))
    (drop / "bad.csv").write_text(BAD_BARS.format(s=symbol))
    (drop / "half-written.csv.part").write_text("symbol,ts")  # skipped until renamed
    (tmp_path / "schedule.toml").write_text(
        "cache_interval_s = 1\n"
        '[[job]]\nname = "bars-drop"\ndimension = "bars"\ndrop_dir = "in/bars"\ninterval_s = 0.5\n'
        '[[job]]\nname = "trades-live"\ndimension = "trades"\ngenerate = { rows = 200, symbols = 3 }\n'
        "interval_s = 0.5\njitter_s = 0.2\n"
        # the volume is not mounted: every run fails, and the job restarts with backoff
        '[[job]]\nname = "not-mounted"\ndimension = "macro"\ndrop_dir = "mnt/macro"\ninterval_s = 0.5\n')
    serve = Serve(tmp_path, "--outputs", str(outputs), "--schedule", "schedule.toml")
    try:
        first = serve.wait_for(
            lambda m: value(m, "backbone_task_restarts_total", task="job:not-mounted") >= 2
            and value(m, "backbone_ingest_rows_total", dimension="trades", outcome="inserted") > 0
            and value(m, "backbone_drop_files_total", job="bars-drop", outcome="ingested") == 1
            and value(m, "backbone_events_consumed_total") > 0 and value(m, "backbone_relay_published_events_total") > 0,
            "ingest, relay, bridge and a restarting job")
        later = serve.wait_for(
            lambda m: value(m, "backbone_task_runs_total", task="job:trades-live")
            > value(first, "backbone_task_runs_total", task="job:trades-live") + 1
            and value(m, "backbone_task_runs_total", task="job:bars-drop")
            > value(first, "backbone_task_runs_total", task="job:bars-drop") + 1
            and value(m, "backbone_task_restarts_total", task="job:not-mounted")
            > value(first, "backbone_task_restarts_total", task="job:not-mounted"),
            "the good jobs keep running while the failing one restarts")
        assert value(later, "backbone_ingest_rows_total", dimension="trades", outcome="inserted") > \
            value(first, "backbone_ingest_rows_total", dimension="trades", outcome="inserted")
        assert value(later, "backbone_ingest_rows_total", dimension="bars", outcome="inserted") == 2
        assert value(later, "backbone_ingest_rows_total", dimension="bars", outcome="rejected") == 1
        assert value(later, "backbone_drop_files_total", job="bars-drop", outcome="refused") == 1
        assert value(later, "backbone_ingest_runs_total", dimension="trades", status="ok") >= 2
        assert value(later, "backbone_ingest_duration_seconds_count", dimension="trades") >= 2
        assert value(later, "backbone_ingest_freshness_seconds", dimension="trades") >= 0
        assert value(later, "backbone_task_restarts_total", task="job:bars-drop") == 0  # a bad file is no crash
        assert value(later, "backbone_task_state", task="relay", state="running") == 1
        assert value(later, "backbone_task_state", task="bridge", state="running") == 1
        assert ("backbone_consumer_lag_events", (("partition", "0"), ("topic", "ingest.events"))) in \
            serve.wait_for(lambda m: any(n == "backbone_consumer_lag_events" for n, _ in m), "consumer lag")
        for name in ("backbone_outbox_backlog_events", "backbone_relay_lag_seconds", "backbone_cache_hits_total",
                     "backbone_cache_misses_total", "backbone_cache_evictions_total"):
            assert any(n == name for n, _ in later), name

        live = json.loads(serve.get("/supervision"))
        assert live["status"] == "running" and live["tier"] == "institutional" and live["shutdown"] is None
        assert set(live["tasks"]) == {"relay", "bridge", "cache", "job:bars-drop", "job:trades-live", "job:not-mounted"}
        assert "mnt/macro: not found" in live["tasks"]["job:not-mounted"]["last_error"]
        assert live["tasks"]["job:not-mounted"]["state"] in ("backoff", "starting")
        assert "bad.csv refused" in live["tasks"]["job:bars-drop"]["last_error"]
        assert live["tasks"]["job:bars-drop"]["state"] == "running"
        assert live["tasks"]["relay"]["detail"]["role"] == "active"

        code = serve.terminate()
        snap = assert_clean_shutdown(serve, code)
        assert snap["shutdown"]["seconds"] <= BOUND_S
        assert snap["tasks"]["job:not-mounted"]["restarts"] >= 2 and snap["tasks"]["job:trades-live"]["restarts"] == 0
        secrets = [s for s in contract.secrets() if s]
        assert secrets
        for text in (serve.stderr, serve.snapshot.read_text(), json.dumps(live)):
            assert not [s for s in secrets if s in text]
    finally:
        serve.kill()


def test_a_dropped_file_is_ingested_exactly_once_across_a_restart(local_env, tmp_path):
    outputs, contract = outputs_copy(local_env, tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    name = f"once-{uuid.uuid4().hex[:8]}.csv"
    content = GOOD_BARS.format(s=f"EX{uuid.uuid4().hex[:6].upper()}")
    (drop / name).write_text(content)
    checksum = hashlib.sha256(content.encode()).hexdigest()
    (tmp_path / "schedule.toml").write_text(
        '[[job]]\nname = "drop"\ndimension = "bars"\ndrop_dir = "drop"\ninterval_s = 0.3\n')
    args = ("--outputs", str(outputs), "--schedule", "schedule.toml")

    first = Serve(tmp_path, *args)
    try:
        first.wait_for(lambda m: value(m, "backbone_drop_files_total", outcome="ingested") == 1, "the first ingest")
        assert_clean_shutdown(first, first.terminate())
    finally:
        first.kill()

    second = Serve(tmp_path, *args)
    try:
        found = second.wait_for(lambda m: value(m, "backbone_drop_files_total", outcome="skipped") == 1
                                and value(m, "backbone_task_runs_total", task="job:drop") >= 3, "the skip")
        assert value(found, "backbone_drop_files_total", outcome="ingested") == 0
        assert value(found, "backbone_ingest_runs_total") == 0
        assert_clean_shutdown(second, second.terminate())
    finally:
        second.kill()

    with psycopg.connect(url(contract)) as pg:
        assert pg.execute("SELECT count(*) FROM ingested_files WHERE checksum = %s", (checksum,)).fetchone()[0] == 1
        assert pg.execute("SELECT count(*) FROM ingest_runs WHERE source = %s", (name,)).fetchone()[0] == 1


def test_serve_on_the_bootstrap_tier_reads_the_event_log_and_stops_cleanly(tmp_path):
    migrate = subprocess.run([sys.executable, "-m", "backbone", "migrate", "apply"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if not k.startswith("BACKBONE_")})
    assert migrate.returncode == 0, migrate.stderr
    (tmp_path / "schedule.toml").write_text(
        '[[job]]\nname = "macro-live"\ndimension = "macro"\ngenerate = { rows = 50 }\ninterval_s = 0.5\n'
        '[[job]]\nname = "trades-live"\ndimension = "trades"\ngenerate = { rows = 100, symbols = 2 }\n'
        "interval_s = 0.5\n")
    serve = Serve(tmp_path, "--schedule", "schedule.toml")
    try:
        found = serve.wait_for(lambda m: value(m, "backbone_events_consumed_total", dimension="trades") > 0
                               and value(m, "backbone_events_consumed_total", dimension="macro") > 0,
                               "events from the event log")
        assert value(found, "backbone_ingest_rows_total", dimension="trades", outcome="inserted") >= 100
        assert not any(n.startswith(("backbone_relay_", "backbone_outbox_")) for n, _ in found)  # no relay here
        live = json.loads(serve.get("/supervision"))
        assert live["tier"] == "bootstrap" and "relay" not in live["tasks"]
        assert "event log" in live["not_applicable"]["relay"]
        assert live["tasks"]["bridge"]["detail"]["handled"] > 0

        serve.proc.send_signal(signal.SIGUSR1)  # a snapshot on request, while running
        deadline = time.monotonic() + 30
        while not serve.snapshot.exists():
            assert time.monotonic() < deadline, serve.stderr
            time.sleep(0.1)
        assert json.loads(serve.snapshot.read_text())["status"] == "running"

        snap = assert_clean_shutdown(serve, serve.terminate())
        assert set(snap["tasks"]) == {"bridge", "cache", "job:macro-live", "job:trades-live", "tier-watch"}
        assert (tmp_path / ".backbone" / "bootstrap" / "backbone.db").exists()
    finally:
        serve.kill()
