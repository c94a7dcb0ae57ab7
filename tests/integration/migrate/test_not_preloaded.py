"""A server that has the timescaledb extension's files but does not preload it (the
library is missing from shared_preload_libraries): `CREATE EXTENSION` would fail there, so
`migrate apply` must not try, and both apply and check must say what to change."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from backbone.local.binaries import find_binaries
from backbone.local.processes import run_as
from backbone.local.services import free_port, pg_user

from ..conftest import run_backbone


@pytest.fixture(scope="module")
def server_without_preload():
    bins = find_binaries()
    if bins.pg_bin is None or bins.timescaledb is None:
        reason = "PostgreSQL 15 with the timescaledb extension files is needed (make setup)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    home = Path(tempfile.mkdtemp(prefix="backbone-nopreload-"))
    user = pg_user()
    if user:
        shutil.chown(home, user)
    data, port = home / "data", free_port()
    init = run_as([str(bins.pg_bin / "initdb"), "-D", str(data), "-U", "backbone", "--auth=trust"], user)
    assert init.returncode == 0, init.stderr
    with open(data / "postgresql.conf", "a") as conf:  # everything as usual, but no preload
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{home}'\n")
    start = run_as([str(bins.pg_bin / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "start"], user)
    assert start.returncode == 0, start.stderr
    yield f"postgresql://backbone@127.0.0.1:{port}/postgres?sslmode=disable"
    run_as([str(bins.pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user)
    shutil.rmtree(home, ignore_errors=True)


def test_apply_and_check_say_to_preload_timescaledb_instead_of_failing(server_without_preload):
    url = ("--extra", f"TIMESCALEDB_URL={server_without_preload}")
    applied = run_backbone("migrate", "apply", *url)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Traceback" not in applied.stderr
    assert "add 'timescaledb' to shared_preload_libraries" in applied.stdout
    check = run_backbone("migrate", "check", *url, "--format", "json")
    assert check.returncode == 0  # degraded: a warning, unless --strict
    assert '"status": "degraded"' in check.stdout and "shared_preload_libraries" in check.stdout
    assert run_backbone("migrate", "check", "--strict", *url).returncode == 1
