"""`python -m infra.deploy`'s input checks, which run before any tool: bad input is one line
and exit 2, never a traceback. (The real runs are tests/deploy.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.deploy.run import _failed

ROOT = Path(__file__).resolve().parents[2]


def deploy(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    return subprocess.run([sys.executable, "-m", "infra.deploy", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "env", "says"), [
    (["up", "--stack", "staging"], {"PULUMI_CONFIG_PASSPHRASE": "x"}, "no state backend"),
    (["up", "--stack", "staging", "--backend", "file:///tmp/nowhere"], {}, "PULUMI_CONFIG_PASSPHRASE"),
    (["preview", "--stack", "staging", "--project-dir", "/tmp"], {}, "holds no Pulumi.yaml"),
])
def test_missing_prerequisites_are_one_line_and_exit_2(args, env, says):
    proc = deploy(*args, **env)
    assert proc.returncode == 2
    assert says in proc.stderr and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_an_unknown_operation_is_refused_by_the_parser():
    proc = deploy("apply", "--stack", "staging")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


class _CommandError(Exception):
    """What pulumi.automation's CommandError reads like: everything in its text."""

    def __init__(self, stderr: str):
        super().__init__(f"\n code: 1\n stdout: Previewing update (staging):\n stderr: {stderr}")


def test_the_engines_config_errors_are_told_apart_from_other_failures():
    schema = _failed(_CommandError("error: validating stack config: Stack 'staging' with configuration key "
                                   "'backbone:await_readiness' must be of type 'boolean'\n"))
    assert schema.bad_config and "must be of type 'boolean'" in str(schema)
    spec = _failed(_CommandError("Diagnostics:\n  pulumi:pulumi:Stack (backbone-staging):\n"
                                 "    error: invalid stack config:\n    backbone:sizes.kafka_brokers: odd\n"))
    assert spec.bad_config and "backbone:sizes.kafka_brokers: odd" in str(spec)
    engine = _failed(_CommandError("error: update failed\n"))
    assert not engine.bad_config and str(engine) == "error: update failed"
