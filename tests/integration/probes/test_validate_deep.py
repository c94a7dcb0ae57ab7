"""`backbone validate` as CI runs it after `pulumi up`: deep probes, migrations, topics and the
smoke round trip, against the real 3-broker local environment, including its failure modes."""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from junitparser import JUnitXml

from ..conftest import run_backbone

CHECKS = {"timescale", "redis", "kafka", "migrations", "topics", "smoke", "freshness.bars", "freshness.trades",
          "freshness.macro", "outbox", "consumer_lag", "cache_ratios",
          *(f"{kind}.{s}" for kind in ("tls", "exposure") for s in ("timescale", "redis", "kafka"))}


@pytest.fixture(scope="module", autouse=True)
def fresh_trades(local_env):
    """Earlier tests ingest trades into the session's database, and the trades freshness SLO is
    15 min: on a slow machine those runs turn stale before this module runs. A fresh run (its
    events relayed) makes freshness here independent of the order and speed of other tests."""
    src = ("--outputs", str(local_env["outputs"]))
    done = run_backbone("ingest", "--dimension", "trades", "--generate", "40", "--symbols", "4", *src)
    assert done.returncode == 0, done.stderr
    relayed = run_backbone("events", "relay", *src)
    assert relayed.returncode == 0, relayed.stderr


def validate(local_env, *args, timeout=60, env=None):
    return run_backbone("validate", "--outputs", str(local_env["outputs"]), *args, timeout=timeout, env=env)


def checks_of(proc):
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_all_ok_on_a_provisioned_three_broker_environment(local_env):
    proc = validate(local_env, "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = checks_of(proc)
    assert set(checks) == CHECKS
    assert {n: c["status"] for n, c in checks.items()} == {n: "ok" for n in CHECKS}
    kafka = checks["kafka"]["details"]
    assert kafka["brokers"] == [1, 2, 3] and kafka["controller"] in (1, 2, 3)
    assert kafka["canary"]["ok"] and kafka["canary"]["end_to_end_ms"] > 0
    assert kafka["under_replicated"] == [] and kafka["offline_partitions"] == []
    ts = checks["timescale"]["details"]
    assert ts["role"] == "primary" and 0 < ts["connection_headroom"] <= 1
    from backbone.serviceconfig import TIMESCALEDB_VERSION
    assert ts["timescaledb"] == TIMESCALEDB_VERSION and f"timescaledb {TIMESCALEDB_VERSION}" in checks["timescale"]["message"]
    assert ts["jobs"]["total"] >= 5 and ts["jobs"]["failing"] == []  # the contract's policies, all healthy
    redis = checks["redis"]["details"]
    assert redis["role"] == "master" and redis["maxmemory"] > 0
    assert set(checks["smoke"]["details"]) == {"store_ms", "cache_ms", "stream_ms"}


def test_junit_report_parses_with_one_case_per_check(local_env, tmp_path):
    out = tmp_path / "validate.xml"
    proc = validate(local_env, "--format", "junit", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    xml = JUnitXml.fromfile(str(out))
    cases = [case for suite in xml for case in suite]
    assert sorted(c.name for c in cases) == sorted(CHECKS)
    assert all(c.is_passed for c in cases)


def test_step_summary_is_appended_for_github_actions(local_env, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    proc = validate(local_env, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 0
    text = summary.read_text()
    assert text.startswith("previous step\n") and "# Backbone readiness" in text


def stop(local_env, service):
    proc = run_backbone("local", "stop", service, "--state-dir", str(local_env["state_dir"]))
    assert proc.returncode == 0, proc.stderr


def start(local_env, service):
    proc = run_backbone("local", "start", service, "--state-dir", str(local_env["state_dir"]))
    assert proc.returncode == 0, proc.stderr


def test_one_broker_stopped_is_degraded_naming_it_and_the_under_replicated_partitions(local_env):
    stop(local_env, "kafka-2")
    try:
        proc = validate(local_env, "--format", "json")
        assert proc.returncode == 0, proc.stdout  # degraded is a warning...
        assert "degraded" in proc.stderr
        kafka = checks_of(proc)["kafka"]
        assert kafka["status"] == "degraded" and kafka["code"] == "brokers_missing"
        assert "2 of 3 declared brokers are up (missing: broker 2)" in kafka["message"]
        assert kafka["details"]["missing_brokers"] == [2]
        assert kafka["details"]["under_replicated"], kafka["details"]
        assert "under-replicated partition(s): " in kafka["message"]
        strict = validate(local_env, "--strict")
        assert strict.returncode == 1  # ...and a failure with --strict
    finally:
        start(local_env, "kafka-2")


def test_all_brokers_stopped_is_down_within_the_deadline(local_env):
    stop(local_env, "kafka")
    try:
        proc = validate(local_env, "--format", "json", "--timeout", "3", timeout=40)
        assert proc.returncode == 1
        checks = checks_of(proc)
        assert checks["kafka"]["status"] == "down"
        assert checks["kafka"]["latency_ms"] <= (3 + 2) * 1000
        assert checks["smoke"]["status"] == "down" and checks["smoke"]["code"] == "smoke_stream_failed"
        assert checks["timescale"]["status"] == "ok" and checks["redis"]["status"] == "ok"
    finally:
        start(local_env, "kafka")


@pytest.fixture
def silent_server():
    """Accepts TCP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held, stop_flag = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop_flag.is_set():
            try:
                held.append(listener.accept()[0])
            except socket.timeout:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop_flag.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_host_that_never_answers_is_down_within_the_timeout(silent_server):
    port = silent_server
    proc = run_backbone("probe", "--format", "json", "--timeout", "2",
                        "--extra", f"TIMESCALEDB_URL=postgresql://u:p@127.0.0.1:{port}/db",
                        "--extra", f"REDIS_URL=redis://127.0.0.1:{port}/0",
                        "--extra", f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}", timeout=30)
    assert proc.returncode == 1
    for name, check in checks_of(proc).items():
        assert check["status"] == "down", name
        assert check["latency_ms"] <= (2 + 2) * 1000, (name, check["latency_ms"])
    assert checks_of(proc)["redis"]["code"] == "timeout"


def test_retry_timeout_waits_for_a_service_that_comes_back(local_env):
    stop(local_env, "redis")
    cmd = [sys.executable, "-m", "backbone", "validate", "--outputs", str(local_env["outputs"]),
           "--retry-timeout", "60", "--timeout", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "REDIS_"))}
    waiting = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # restart only once validate has seen the outage (its progress line says so)
        line = waiting.stderr.readline()
        assert "attempt 1: not ready: redis down" in line, line
    finally:
        start(local_env, "redis")
    out, err = waiting.communicate(timeout=90)
    assert waiting.returncode == 0, out + err
    assert "ready after" in err and "| redis | ✅ ok |" in out


def test_a_failing_timescaledb_job_is_degraded_and_named(local_env):
    """A background job whose last run failed (here a user-defined action that raises; in
    life a retention or compression policy) makes the Timescale probe degraded, naming it."""
    import time

    import psycopg

    from ..pg import owner_url
    with psycopg.connect(owner_url(local_env), autocommit=True) as conn:  # a job is the schema owner's to add
        conn.execute("CREATE OR REPLACE PROCEDURE backbone_test_broken_job(job_id int, config jsonb) "
                     "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted job failure'; END $$")
        job = conn.execute("SELECT add_job('backbone_test_broken_job', '1 hour', initial_start => now())").fetchone()[0]
        try:
            deadline = time.monotonic() + 30
            while conn.execute("SELECT last_run_status FROM timescaledb_information.job_stats WHERE job_id = %s",
                               (job,)).fetchone() in (None, (None,)) and time.monotonic() < deadline:
                time.sleep(0.2)
            degraded = validate(local_env, "--format", "json")
            strict = validate(local_env, "--strict")
        finally:
            conn.execute("SELECT delete_job(%s)", (job,))
            conn.execute("DROP PROCEDURE backbone_test_broken_job")
    assert degraded.returncode == 0, [(c["name"], c["status"], c["message"]) for c in json.loads(degraded.stdout)["checks"] if c["status"] != "ok"]  # degraded is a warning unless --strict
    check = checks_of(degraded)["timescale"]
    assert check["status"] == "degraded" and check["code"] == "job_failing"
    # the job's own error (job_errors) is readable by the job's owner only: the schema owner's
    # here, not the application that validates, so the reason is not shown
    assert f"background job {job} (backbone_test_broken_job) failed its last run" in check["message"]
    assert strict.returncode == 1
    assert checks_of(validate(local_env, "--format", "json"))["timescale"]["status"] == "ok"  # job gone: healthy
