"""One real local environment for the session: PostgreSQL, Redis and a 3-node Kafka KRaft
cluster on 127.0.0.1 (replication factor 3 and min.insync.replicas=2 are real).

Started through `backbone local up --kafka-brokers 3`, exactly as a user would (which also
runs `migrate apply` and `topics apply`), and torn down at the end.
Skipped only when the service binaries truly cannot exist here, with the reason printed;
in CI (CI=true) a missing binary is a failure, never a skip.
"""
import json
import os
import subprocess
import sys

import pytest

from backbone.local.binaries import SETUP_HINT, find_binaries

BACKBONE = [sys.executable, "-m", "backbone"]


def run_backbone(*args, timeout=180, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    full_env.update(env or {})
    return subprocess.run([*BACKBONE, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


def local_environment(tmp_path_factory, name, *up_args):
    """Generator for fixtures: `backbone local up *up_args` in a fresh state dir, yield what
    tests need, `backbone local down` afterwards."""
    missing = find_binaries().missing(["timescale", "redis", "kafka"])
    if missing:
        reason = f"service binaries missing ({', '.join(missing)}); {SETUP_HINT}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    state_dir = tmp_path_factory.mktemp(name) / "env"
    try:  # a loaded machine (other sessions' environments) can take minutes to start three brokers
        up = run_backbone("local", "up", *up_args, "--state-dir", str(state_dir), timeout=600)
    except subprocess.TimeoutExpired:
        run_backbone("local", "down", "--state-dir", str(state_dir))
        raise
    if up.returncode != 0:
        run_backbone("local", "down", "--state-dir", str(state_dir))
        pytest.fail(f"backbone local up {' '.join(up_args)} failed (exit {up.returncode}):\n{up.stderr}")
    outputs = state_dir / "outputs.json"
    yield {"state_dir": state_dir, "outputs": outputs, "contract": json.loads(outputs.read_text()),
           "up_output": up.stdout + up.stderr}
    down = run_backbone("local", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def local_env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "local", "--kafka-brokers", "3")
