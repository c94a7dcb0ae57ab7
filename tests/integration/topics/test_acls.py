"""The declared ACLs (`kafka.acls`) through `topics plan/apply/check` on the session's secure
cluster: every outcome verified on the broker with DescribeAcls, as the admin principal."""
import json

import pytest
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)

from backbone.clients.kafka import kafka_client_config
from backbone.contract import Contract, merge_outputs

from ..conftest import run_backbone

STRAY = AclBinding(ResourceType.TOPIC, "stray-topic", ResourcePatternType.LITERAL, "User:stray", "*",
                   AclOperation.READ, AclPermissionType.ALLOW)


@pytest.fixture(scope="module")
def cluster(local_env):
    contract = Contract.model_validate(merge_outputs(local_env["contract"]))
    return {"admin": AdminClient(kafka_client_config(contract.kafka, 10, "admin")), "contract": contract,
            "outputs": str(local_env["outputs"])}


def topics(cluster, *args):
    proc = run_backbone("topics", *args, "--outputs", cluster["outputs"], timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    for principal in cluster["contract"].kafka.principals.values():
        assert principal.password.get_secret_value() not in proc.stdout + proc.stderr
    return proc


def on_broker(cluster, principal=None):
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    return cluster["admin"].describe_acls(everything, request_timeout=10).result(timeout=15)


def test_in_sync_after_local_up(cluster):
    proc = topics(cluster, "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "## ACLs:" in proc.stdout and "In sync: every declared ACL" in proc.stdout
    declared = sum(len(a.operations) for a in cluster["contract"].kafka.acls)
    assert len(on_broker(cluster)) == declared


def test_an_undeclared_acl_is_drift_kept_by_apply_and_deleted_only_with_the_flag(cluster):
    cluster["admin"].create_acls([STRAY], request_timeout=10)[STRAY].result(timeout=15)
    check = topics(cluster, "check")
    assert check.returncode == 1 and "ACL not declared: User:stray allow read on topic stray-topic" in check.stdout
    plan = json.loads(topics(cluster, "plan", "--format", "json").stdout)
    assert [b["principal"] for b in plan["acls"]["undeclared"]] == ["User:stray"]
    kept = topics(cluster, "apply")
    assert kept.returncode == 0 and "not declared (kept; drift)" in kept.stdout
    assert len(on_broker(cluster, "User:stray")) == 1
    gone = topics(cluster, "apply", "--allow-acl-delete")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert on_broker(cluster, "User:stray") == []
    assert topics(cluster, "check").returncode == 0


def test_a_missing_declared_acl_is_drift_and_apply_restores_it(cluster):
    relay = f"User:{cluster['contract'].kafka.principals['relay'].user}"
    describe = AclBindingFilter(ResourceType.TOPIC, "ingest.", ResourcePatternType.PREFIXED, relay, "*",
                                AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    deleted = cluster["admin"].delete_acls([describe], request_timeout=10)[describe].result(timeout=15)
    assert len(deleted) == 1
    check = topics(cluster, "check")
    assert check.returncode == 1 and f"ACL missing: {relay} allow describe on topic ingest.*" in check.stdout
    applied = topics(cluster, "apply")
    assert applied.returncode == 0 and "✅ created" in applied.stdout, applied.stdout
    assert any(b.operation == AclOperation.DESCRIBE and b.name == "ingest." for b in on_broker(cluster, relay))
    assert topics(cluster, "check").returncode == 0
