"""`backbone tier` refuses bad input with exit 2 and a sentence naming the problem, before
touching any store or service."""
import json

import pytest

from .run_in_process import run

PASSWORD = "planted-pw-tier-7731"


def outputs(tmp_path, **backbone) -> str:
    doc = {"backbone": {"contract_version": 1, "tier": "institutional", "platform": "docker",
                        "timescale": {"host": "127.0.0.1", "port": 1}, **backbone},
           "backbone_secrets": {"timescale": {"password": PASSWORD}}}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("action", ["plan", "switch", "rollback", "complete", "status"])
def test_a_bootstrap_contract_is_not_what_tier_commands_take(tmp_path, action):
    path = tmp_path / "boot.json"
    path.write_text(json.dumps({"contract_version": 1, "tier": "bootstrap"}))
    code, out, err, _ = run("tier", action, "--outputs", str(path))
    assert code == 2 and "institutional contract" in err


def test_the_bootstrap_store_must_exist(tmp_path):
    missing = tmp_path / "nowhere" / "store.db"
    code, out, err, _ = run("tier", "switch", "--outputs", outputs(tmp_path, bootstrap={"store": str(missing)}))
    assert code == 2 and str(missing) in err and "does not exist" in err
    assert not missing.parent.exists()  # nothing created
    assert PASSWORD not in out + err


@pytest.mark.parametrize("flag,value", [("--cutover-timeout", "0"), ("--cutover-timeout", "nan"),
                                        ("--cutover-retries", "0"), ("--cutover-retries", "two")])
def test_bad_cut_over_bounds(tmp_path, flag, value):
    code, _, err, _ = run("tier", "switch", flag, value, "--outputs", outputs(tmp_path))
    assert code == 2 and flag in err
