"""Tier switching on the session's local environment: each test gets its own bootstrap
store and its own empty TimescaleDB database (created here, dropped afterwards), so the
tests never see each other's rows."""
import json
import uuid

import psycopg
import pytest

from backbone.contract import Contract, merge_outputs

from ..conftest import run_backbone
from ..pg import create_database, drop_database, url


class Deployment:
    """One deployment with both ends: a migrated bootstrap store and an institutional
    outputs file whose `bootstrap.store` names it (what `pulumi up` exports after
    `backbone:tier` changes)."""

    def __init__(self, tmp_path, local_env):
        self.dir = tmp_path
        self.store = tmp_path / "bootstrap" / "backbone.db"
        self.database = "tier_" + uuid.uuid4().hex[:10]
        doc = json.loads(local_env["outputs"].read_text())
        self.env = local_env
        create_database(local_env, self.database)
        doc["backbone"] = {**doc["backbone"], "bootstrap": {"store": str(self.store)}}
        doc["backbone"]["timescale"] = {**doc["backbone"]["timescale"], "database": self.database}
        doc["backbone"]["redis"] = {**doc["backbone"]["redis"],
                                    "cache_policy": {"namespace": "emp:cache:tier:" + uuid.uuid4().hex[:6]}}
        self.outputs = tmp_path / "institutional.json"
        self.outputs.write_text(json.dumps(doc))
        self.bootstrap_outputs = tmp_path / "bootstrap.json"
        self.bootstrap_outputs.write_text(json.dumps(
            {"contract_version": 1, "tier": "bootstrap", "bootstrap": {"store": str(self.store)}}))
        migrated = run_backbone("migrate", "apply", "--outputs", str(self.bootstrap_outputs))
        assert migrated.returncode == 0, migrated.stderr

    def institutional(self) -> Contract:
        return Contract.model_validate(merge_outputs(json.loads(self.outputs.read_text())))

    def bootstrap(self) -> Contract:
        return Contract.model_validate(json.loads(self.bootstrap_outputs.read_text()))

    def target(self, duty=None) -> psycopg.Connection:
        """A session on the target as the contract's user (`duty="owner"`: the schema's owner)."""
        return psycopg.connect(url(self.institutional(), duty), autocommit=True)

    def drop(self) -> None:
        drop_database(self.env, self.database)


@pytest.fixture
def deployment(tmp_path, local_env):
    made = Deployment(tmp_path, local_env)
    yield made
    made.drop()
