"""Mutations of a valid contract: types, nulls, deletions, huge, negative and NaN numbers,
odd strings, in every field. None may end in a traceback; every invalid one must exit 2 in
under 2 s, naming the field, before anything is contacted (every service of the contract
points at a listener that records connections)."""
import copy
import json

import pytest

from tests.listener import RecordingListener
from tests.unit.cli.run_in_process import run

ODD_VALUES = [None, True, False, -1, 0, 10 ** 30, float("nan"), float("inf"), "", "x" * 5000,
              "x'; DROP TABLE t; --", "ünïcødé", [], {}, "1e999"]
DELETE = object()


def base_document(port: int) -> dict:
    return {
        "backbone": {
            "contract_version": 1, "environment": "fuzz", "tier": "institutional", "platform": "docker",
            "timescale": {"host": "127.0.0.1", "port": port, "database": "backbone", "user": "backbone",
                          "sslmode": "disable", "pool": {"size": 5, "max_overflow": 10, "timeout_s": 30,
                                                         "recycle_s": 1800, "pre_ping": True},
                          "policies": {"daily_bars": {"chunk_interval_days": 30, "retention_days": 3650,
                                                      "compress_after_days": 90}}},
            "redis": {"host": "127.0.0.1", "port": port, "db": 0,
                      "cache_policy": {"namespace": "emp:cache", "ttl_seconds": 900, "max_keys": 1024}},
            "kafka": {"bootstrap_servers": f"127.0.0.1:{port}", "expected_brokers": 1,
                      "topics": [{"name": "ingest.events", "partitions": 3, "replication_factor": 1,
                                  "config": {"min.insync.replicas": "1", "retention.ms": "604800000"}}]},
            "objectives": {"timescale": {"rto_s": 900, "rpo_s": 86400}},
        },
        "backbone_secrets": {"timescale": {"password": "fuzz-password"}, "redis": {"password": "fuzz-password"}},
    }


def leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield path + (i,)
            yield from leaves(value, path + (i,))


def mutated(document: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(document)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def original(document: dict, path: tuple):
    node = document
    for key in path:
        node = node[key]
    return node


def must_refuse(before, value) -> bool:
    """A number replaced by a boolean, NaN, infinity or 10^30 is never a valid setting."""
    numeric = isinstance(before, (int, float)) and not isinstance(before, bool)
    return numeric and any(value is odd for odd in (True, False, ODD_VALUES[6], ODD_VALUES[7], ODD_VALUES[5]))


@pytest.fixture(scope="module")
def listener():
    recorder = RecordingListener()
    yield recorder
    recorder.close()


def test_the_base_document_is_valid(listener, tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(base_document(listener.port)))
    code, out, err, _ = run("manifest", "--outputs", str(outputs), "--format", "json")
    assert code == 0, err
    assert listener.reset() == 0


def test_every_mutation_is_refused_cleanly_or_accepted(listener, tmp_path):
    document = base_document(listener.port)
    outputs = tmp_path / "outputs.json"
    refused = accepted = 0
    for path in list(leaves(document)):
        for value in ODD_VALUES + [DELETE]:
            outputs.write_text(json.dumps(mutated(document, path, value)))
            code, out, err, _ = run("manifest", "--outputs", str(outputs), "--format", "json")
            where = f"{'.'.join(map(str, path))} = {value if value is DELETE else repr(value)[:40]}"
            assert code in (0, 2), f"{where}: exit {code}\n{err}"
            assert "Traceback" not in err, where
            if code == 0:
                assert not must_refuse(original(document, path), value), f"{where}: accepted"
                accepted += 1
                continue
            refused += 1
            # the same document through the command that would contact every service
            code, out, err, elapsed = run("validate", "--outputs", str(outputs), "--timeout", "1")
            assert code == 2, f"{where}: validate exit {code}, manifest refused it"
            assert elapsed < 2.0, f"{where}: took {elapsed:.2f} s"
            assert listener.reset() == 0, f"{where}: a service was contacted"
            # the field, its parent, or its section ("backbone" alone only when that is the field)
            inner = path[1:] if path[0] == "backbone" and len(path) > 1 else path
            named = [str(p) for p in inner if not isinstance(p, int)]
            assert any(f"{name}" in err.removeprefix("backbone: error: ") for name in named[-2:] + named[:1]), \
                f"{where}: {err}"
            assert err.startswith("backbone: error: ") and err.count("\n") == 1, f"{where}: {err}"
    assert refused > 200 and accepted > 20  # both kinds were exercised
