"""tier/ends.py and tier/render.py: the rules and the text the tier CLI used to hold."""
from types import SimpleNamespace

import pytest

from backbone.contract import BootstrapStore, Contract
from backbone.errors import ConfigError
from backbone.tier.ends import ends, source_of
from backbone.tier.plan import Plan
from backbone.tier.render import plan_text, rollback_text, status_text, switch_text


def _institutional(store):
    return Contract(tier="institutional", bootstrap=BootstrapStore(store=str(store)),
                    timescale={"host": "db", "user": "u", "database": "d"})


def test_ends_name_the_source_the_target_and_the_record_reference(tmp_path):
    store = tmp_path / "store.db"
    store.touch()
    target = _institutional(store)
    source, got, ref = ends(target, tmp_path / "outputs.json", None)
    assert got is target and ref == {"outputs": str((tmp_path / "outputs.json").resolve())}
    assert source.tier == "bootstrap" and source.bootstrap == target.bootstrap and source == source_of(target)
    assert ends(target, None, "prod")[2] == {"stack": "prod"}


def test_ends_refuse_what_cannot_name_both_ends(tmp_path):
    with pytest.raises(ConfigError, match="take the institutional contract"):
        ends(Contract(), None, "prod")
    with pytest.raises(ConfigError, match="does not exist"):
        ends(_institutional(tmp_path / "missing.db"), None, "prod")
    (tmp_path / "s.db").touch()
    with pytest.raises(ConfigError, match="--outputs FILE or --stack NAME"):
        ends(_institutional(tmp_path / "s.db"), None, None)


def test_plan_text_lists_blockers_and_the_plan_owns_its_exit_code():
    plan = Plan(active="bootstrap", rows={"daily_bars": 1200}, on_target={"daily_bars": None},
                preflight=[{"check": "redis", "status": "down", "summary": "refused"}])
    text = plan_text(plan, "text")
    assert "| daily_bars | 1,200 | - |" in text and text.endswith("blockers: redis: refused\n")
    assert plan.exit_code == 1 and Plan(active="bootstrap").exit_code == 0
    assert plan_text(plan, "json").startswith('{"active": "bootstrap"')


def test_outcome_texts():
    done = SimpleNamespace(already=False, fence_ms=[12.4], copied={"a": 1000}, caught_up=3, replayed=2)
    assert switch_text(done, "text", None).startswith("switched: the institutional tier is active (write fence 12 ms")
    assert switch_text(done, "text", "copy") == "stopped after copy; rerun `backbone tier switch` to go on\n"
    back = SimpleNamespace(forced=False, epoch=4, fence_ms=[], mirrored=5)
    assert rollback_text(back, "text").startswith("rolled back: the bootstrap tier is active (cut-over 4, write fence 0 ms")
    assert status_text({"phase": "copy", "left": {"a": 1}}, "text") == 'phase: copy\nleft: {"a": 1}\n'
