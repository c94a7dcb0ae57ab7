"""The sslmode the manifest and reports show is the one the connection uses: an explicit
URL's own `?sslmode=` wins, and a URL without one gets the contract's."""
import json
import os
import subprocess
import sys

import pytest
from psycopg.conninfo import conninfo_to_dict

from backbone.contract import Sources, load_contract
from backbone.errors import ConfigError

PASSWORD = "PLANTED-sslmode-secret"


def contract(**env):
    return load_contract(Sources(environ=env))


def test_the_urls_sslmode_is_reported_and_used():
    c = contract(TIMESCALEDB_URL=f"postgresql://ops:{PASSWORD}@db.internal:5433/market?sslmode=require",
                 TIMESCALEDB_SSLMODE="disable")
    assert c.manifest()["timescale"]["sslmode"] == "require"
    assert conninfo_to_dict(c.timescale.dsn())["sslmode"] == "require"


def test_a_url_without_sslmode_connects_with_the_contracts_and_says_so():
    c = contract(TIMESCALEDB_URL=f"postgresql://ops:{PASSWORD}@db.internal/market?application_name=x",
                 TIMESCALEDB_SSLMODE="verify-full")
    params = conninfo_to_dict(c.timescale.dsn())
    assert params["sslmode"] == "verify-full" and params["application_name"] == "x"
    assert params["password"] == PASSWORD and params["host"] == "db.internal"
    assert c.manifest()["timescale"]["sslmode"] == "verify-full"
    bare = contract(TIMESCALEDB_URL="postgresql://ops@h1:5432,h2:5433/market")
    assert conninfo_to_dict(bare.timescale.dsn()) == {"user": "ops", "host": "h1,h2", "port": "5432,5433",
                                                      "dbname": "market", "sslmode": "prefer"}
    assert bare.manifest()["timescale"]["sslmode"] == "prefer"


def test_parts_report_their_own_sslmode():
    c = contract(TIMESCALEDB_HOST="db.internal", TIMESCALEDB_SSLMODE="require")
    assert c.manifest()["timescale"]["sslmode"] == "require"
    assert conninfo_to_dict(c.timescale.dsn())["sslmode"] == "require"


def test_an_unknown_sslmode_in_the_url_is_bad_input_without_echoing_it():
    with pytest.raises(ConfigError) as caught:
        contract(TIMESCALEDB_URL=f"postgresql://ops:{PASSWORD}@db.internal/market?sslmode=sometimes")
    assert "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_the_manifest_command_shows_the_urls_sslmode(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))}
    env["TIMESCALEDB_URL"] = f"postgresql://ops:{PASSWORD}@db.internal/market?sslmode=verify-ca"
    proc = subprocess.run([sys.executable, "-m", "backbone", "manifest", "--format", "json"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["timescale"]["sslmode"] == "verify-ca"
    assert PASSWORD not in proc.stdout + proc.stderr
