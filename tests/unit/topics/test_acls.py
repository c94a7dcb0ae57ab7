"""Declared Kafka ACLs: validation and the plan against what the cluster holds (pure)."""
import pytest
from pydantic import ValidationError

from backbone.contract import AclSpec
from backbone.topics.acls import Binding, acl_lines, declared_bindings, plan_acls


def spec(**kw):
    return AclSpec(**({"principal": "User:relay", "resource_type": "topic", "name": "ingest.",
                       "pattern_type": "prefixed", "operations": ["write", "describe"]} | kw))


def test_each_operation_is_one_binding():
    bindings = declared_bindings([spec()])
    assert bindings == {Binding("User:relay", "topic", "ingest.", "prefixed", "write", "allow"),
                        Binding("User:relay", "topic", "ingest.", "prefixed", "describe", "allow")}


def test_missing_bindings_are_created_and_undeclared_ones_are_drift_but_kept():
    stray = Binding("User:someone", "topic", "*", "literal", "all", "allow")
    have = [Binding("User:relay", "topic", "ingest.", "prefixed", "write", "allow"), stray]
    plan = plan_acls([spec()], have)
    assert plan.creates == [Binding("User:relay", "topic", "ingest.", "prefixed", "describe", "allow")]
    assert plan.undeclared == (stray,) and plan.deletes == []
    assert plan.status == "drift" and len(plan.drift) == 2
    assert any("not declared" in d and "User:someone" in d for d in plan.drift)
    assert "--allow-acl-delete" in "\n".join(acl_lines(plan))
    assert plan_acls([spec()], have, allow_delete=True).deletes == [stray]


def test_in_sync_when_the_cluster_holds_exactly_the_declaration():
    plan = plan_acls([spec()], declared_bindings([spec()]))
    assert plan.status == "in_sync" and not plan.drift and not plan.creates


@pytest.mark.parametrize("bad", [
    {"principal": "relay"},  # no User: prefix
    {"operations": ["wrte"]},
    {"operations": []},
    {"resource_type": "cluster", "name": "other", "pattern_type": "literal"},
    {"name": "*", "pattern_type": "prefixed"},
    {"pattern_type": "match"},
])
def test_declarations_no_cluster_would_accept_are_refused(bad):
    with pytest.raises(ValidationError):
        spec(**bad)
