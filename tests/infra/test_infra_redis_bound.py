"""`backbone:redis`: min-replicas-to-write / min-replicas-max-lag from the stack config.

The values are validated by the spec (ranges, and never more replicas than the stack runs),
written into the redis.conf of every Redis the stack declares (docker: the uploaded file;
kubernetes: the `redis-config` ConfigMap all data pods include) and exported in the
contract's `redis` section, where the drills read what the deployment enforces.
"""
from __future__ import annotations

import pulumi
import pytest

from infra.spec import build_spec
from stack_harness import plain, run_stack, stack_file_config

pytestmark = pytest.mark.timeout(60)

HA = {"kafka_brokers": 3, "redis_replicas": 2, "redis_sentinels": 3, "timescale_replicas": 1}
CONTAINER = "docker:index/container:Container"


def conf_lines(conf: str) -> set[str]:
    return {line.strip() for line in conf.splitlines() if line.strip() and not line.startswith("#")}


def bound_lines(to_write: int, max_lag_s: int) -> set[str]:
    return {f"min-replicas-to-write {to_write}", f"min-replicas-max-lag {max_lag_s}"}


def docker_redis_conf(run) -> str:
    [container] = [d for d in run.of_type(CONTAINER) if d.name == "redis-container"]
    [upload] = [u for u in plain(container.inputs)["uploads"] if u["file"] == "/usr/local/etc/redis.conf"]
    return upload["content"]


def kubernetes_redis_conf(run) -> str:
    return plain(run.k8s("ConfigMap", "redis-config").inputs)["data"]["redis.conf"]


def exported_bound(run) -> tuple[int, int]:
    """Straight from the `backbone` output, not through the Contract model (whose defaults
    would hide a missing field)."""
    redis = run.outputs["backbone"]["redis"]
    return redis["min_replicas_to_write"], redis["min_replicas_max_lag_s"]


def ok(run):
    assert run.error is None, repr(run.error)
    return run


# --- the spec ------------------------------------------------------------------------------

def test_defaults_are_no_bound_and_ten_seconds():
    spec = build_spec({}, "x")
    assert (spec.redis.min_replicas_to_write, spec.redis.min_replicas_max_lag_s) == (0, 10)
    spec = build_spec({"redis": {"min_replicas_max_lag_s": 3}}, "x")
    assert (spec.redis.min_replicas_to_write, spec.redis.min_replicas_max_lag_s) == (0, 3)


@pytest.mark.parametrize("redis, message", [
    ({"min_replicas_to_write": -1}, "backbone:redis.min_replicas_to_write: must be >= 0"),
    ({"min_replicas_to_write": 17}, "backbone:redis.min_replicas_to_write: must be <= 16"),
    ({"min_replicas_to_write": "one"}, "backbone:redis.min_replicas_to_write: must be an integer"),
    ({"min_replicas_max_lag_s": 0}, "backbone:redis.min_replicas_max_lag_s: must be >= 1"),
    ({"min_replicas_max_lag_s": -5}, "backbone:redis.min_replicas_max_lag_s: must be >= 1"),
    ({"min_replicas_max_lag_s": 3601}, "backbone:redis.min_replicas_max_lag_s: must be <= 3600"),
    ({"min_replicas": 1}, "backbone:redis.min_replicas: unknown key"),
])
def test_out_of_range_values_name_their_key(redis, message):
    with pytest.raises(ValueError) as caught:
        build_spec({"platform": "kubernetes", "sizes": HA, "redis": redis}, "x")
    assert message in str(caught.value)


def test_a_non_object_is_refused():
    with pytest.raises(ValueError, match="backbone:redis: must be an object"):
        build_spec({"redis": 1}, "x")


@pytest.mark.parametrize("platform, sizes, to_write, replicas", [
    ("docker", {}, 1, 0),
    ("kubernetes", {}, 1, 0),
    ("kubernetes", HA, 3, 2),
    ("kubernetes", {**HA, "redis_replicas": 1}, 2, 1),
])
def test_it_never_asks_for_more_replicas_than_the_stack_runs(platform, sizes, to_write, replicas):
    with pytest.raises(ValueError) as caught:
        build_spec({"platform": platform, "sizes": sizes, "redis": {"min_replicas_to_write": to_write}}, "x")
    assert (f"backbone:redis.min_replicas_to_write: {to_write} exceeds sizes.redis_replicas ({replicas}): "
            "the master would refuse every write") in str(caught.value)
    if not replicas:
        assert "single Redis: use 0" in str(caught.value)


@pytest.mark.parametrize("to_write", [0, 1, 2])
def test_up_to_the_replica_count_is_accepted(to_write):
    spec = build_spec({"platform": "kubernetes", "sizes": HA, "redis": {"min_replicas_to_write": to_write}}, "x")
    assert spec.redis.min_replicas_to_write == to_write


def test_staging_bounds_writes_to_one_replica_within_ten_seconds():
    spec = build_spec(stack_file_config("staging"), "staging")
    assert (spec.redis.min_replicas_to_write, spec.redis.min_replicas_max_lag_s) == (1, 10)
    assert spec.redis.min_replicas_to_write <= spec.sizes.redis_replicas


# --- the program: redis.conf and the outputs ------------------------------------------------

def test_dev_runs_the_defaults(dev_run):
    assert bound_lines(0, 10) <= conf_lines(docker_redis_conf(dev_run))
    assert exported_bound(dev_run) == (0, 10)


def test_docker_writes_the_configured_lag():
    run = ok(run_stack("dev", {**stack_file_config("dev"), "redis": {"min_replicas_max_lag_s": 30}}))
    assert bound_lines(0, 30) <= conf_lines(docker_redis_conf(run))
    assert exported_bound(run) == (0, 30)


def test_staging_writes_its_bound_into_redis_conf_and_exports_it(staging_run):
    assert bound_lines(1, 10) <= conf_lines(kubernetes_redis_conf(staging_run))
    assert exported_bound(staging_run) == (1, 10)


def test_kubernetes_writes_the_configured_values():
    run = ok(run_stack("staging", {**stack_file_config("staging"),
                                   "redis": {"min_replicas_to_write": 2, "min_replicas_max_lag_s": 5}}))
    lines = conf_lines(kubernetes_redis_conf(run))
    assert bound_lines(2, 5) <= lines
    assert not bound_lines(1, 10) & lines
    assert exported_bound(run) == (2, 5)


def test_kubernetes_without_the_key_runs_the_defaults():
    config = {key: value for key, value in stack_file_config("staging").items() if key != "redis"}
    run = ok(run_stack("staging", config))
    assert bound_lines(0, 10) <= conf_lines(kubernetes_redis_conf(run))
    assert exported_bound(run) == (0, 10)


def test_a_changed_bound_rolls_the_redis_pods_only():
    config = stack_file_config("staging")
    before = ok(run_stack("staging", config))
    after = ok(run_stack("staging", {**config, "redis": {"min_replicas_to_write": 2}}))

    def checksum(run, name):
        return plain(run.k8s("StatefulSet", name).inputs)["spec"]["template"]["metadata"]["annotations"]
    assert checksum(before, "redis") != checksum(after, "redis")
    for untouched in ("redis-sentinel", "kafka", "timescale"):
        assert checksum(before, untouched) == checksum(after, untouched), untouched


@pytest.mark.parametrize("stack, redis, message", [
    ("dev", {"min_replicas_to_write": 1},
     "backbone:redis.min_replicas_to_write: 1 exceeds sizes.redis_replicas (0)"),
    ("staging", {"min_replicas_to_write": 3},
     "backbone:redis.min_replicas_to_write: 3 exceeds sizes.redis_replicas (2)"),
    ("staging", {"min_replicas_to_write": -1}, "backbone:redis.min_replicas_to_write: must be >= 0"),
    ("staging", {"min_replicas_max_lag_s": 0}, "backbone:redis.min_replicas_max_lag_s: must be >= 1"),
])
def test_a_bad_value_stops_the_program_before_any_resource(stack, redis, message):
    result = run_stack(stack, {**stack_file_config(stack), "redis": redis})
    assert isinstance(result.error, pulumi.RunError)
    assert message in str(result.error)
    assert result.declared == [] and result.outputs == {}
