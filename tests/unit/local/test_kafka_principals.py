"""The local platform's Kafka principals and their ACLs: exactly what each duty needs (pure)."""
import pytest

from backbone.contract import AclSpec
from backbone.local import kafka as lk
from backbone.local.environment import default_topics


def grants(principal):
    specs = [AclSpec(**a) for a in lk.default_acls(default_topics(3))]
    return {(s.resource_type, s.name, s.pattern_type, op) for s in specs if s.principal == f"User:{principal}"
            for op in s.operations}


def test_the_applications_user_may_not_administer_anything():
    mine = grants(lk.APP_USER)
    assert not {op for *_, op in mine} & {"create", "delete", "alter", "alter_configs", "all"}
    assert not any(kind == "cluster" for kind, *_ in mine)
    assert ("topic", "backbone.canary", "literal", "write") in mine
    assert ("group", "backbone-canary", "literal", "read") in mine


def test_relay_writes_the_ingest_topics_and_nothing_else():
    assert grants(lk.PRINCIPALS["relay"]) == {("topic", "ingest.", "prefixed", "write"),
                                              ("topic", "ingest.", "prefixed", "describe")}


def test_bridge_reads_the_ingest_topics_in_its_own_groups():
    assert grants(lk.PRINCIPALS["bridge"]) == {("topic", "ingest.", "prefixed", "read"),
                                               ("topic", "ingest.", "prefixed", "describe"),
                                               ("group", "backbone-bridge", "prefixed", "read"),
                                               ("group", "backbone-bridge", "prefixed", "describe")}


def test_only_admin_alters_the_cluster_and_nobody_holds_all():
    for principal in [lk.APP_USER, *lk.PRINCIPALS.values()]:
        cluster = {op for kind, _, _, op in grants(principal) if kind == "cluster"}
        assert cluster == ({"alter", "describe"} if principal == lk.PRINCIPALS["admin"] else set())
        assert "all" not in {op for *_, op in grants(principal)}


def test_declared_topics_outside_the_ingest_prefix_are_refused():
    with pytest.raises(ValueError, match="ingest."):
        lk.default_acls([{"name": "other.topic"}])


def test_scram_arguments_name_every_principal_and_keep_passwords():
    passwords: dict[str, str] = {}
    args = lk.scram_arguments(passwords)
    assert args.count("--add-scram") == 5
    assert set(passwords) == {"kafka", "kafka.admin", "kafka.relay", "kafka.bridge", "kafka.drills"}
    assert lk.scram_arguments(passwords) == args  # made once, kept
