"""One TimescaleDB: what the stacks deploy is what the local platform (and so CI) runs."""
import re
from pathlib import Path

import yaml

from backbone import serviceconfig as sc

ROOT = Path(__file__).resolve().parents[2]


def test_the_stack_defaults_pin_the_local_timescaledb_and_postgres_major():
    images = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["images"]["default"]
    assert images["timescale"] == sc.timescale_images()["timescale"]
    assert images["timescale_ha"] == sc.timescale_images()["timescale_ha"]
    assert f"{sc.TIMESCALEDB_VERSION}-pg{sc.POSTGRES_MAJOR}" in images["timescale"]
    assert f"pg{sc.POSTGRES_MAJOR}." in images["timescale_ha"] and images["timescale_ha"].endswith(
        f"-ts{sc.TIMESCALEDB_VERSION}")


def test_no_stack_overrides_the_timescale_images_with_another_version():
    for stack in ROOT.glob("Pulumi.*.yaml"):
        overrides = (yaml.safe_load(stack.read_text()).get("config") or {}).get("backbone:images") or {}
        for key in ("timescale", "timescale_ha"):
            if key in overrides:
                assert overrides[key] == sc.timescale_images()[key], f"{stack.name}: images.{key}"


def test_setup_builds_the_same_timescaledb_for_the_same_postgres_major():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(r"^timescaledb_version=(\S+)$", setup, re.M).group(1) == sc.TIMESCALEDB_VERSION
    assert f"/usr/lib/postgresql/{sc.POSTGRES_MAJOR}/bin/pg_config" in setup


def test_the_stack_spec_refuses_a_timescale_image_of_another_version():
    import pytest
    from pydantic import ValidationError

    from infra.spec import Images
    assert Images().timescale == sc.timescale_images()["timescale"]
    with pytest.raises(ValidationError, match="TimescaleDB 2.17.2 on PostgreSQL 16"):
        Images(timescale="timescale/timescaledb:2.17.2-pg16")
    with pytest.raises(ValidationError, match="PostgreSQL 16"):
        Images(timescale_ha=f"timescale/timescaledb-ha:pg16.6-ts{sc.TIMESCALEDB_VERSION}")
