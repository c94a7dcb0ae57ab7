"""One error root: every error class backbone defines reaches the CLI as a `BackboneError`
(exit 1) or a `ConfigError` (exit 2), or is caught inside backbone before it could; `main`
prints it once, redacted, without a traceback."""
import ast
import functools
import importlib
import pkgutil
from pathlib import Path

import pytest

import backbone
from backbone import cli
from backbone.cli import drill as drill_cli
from backbone.errors import BackboneError, ConfigError, Interrupted

ROOT = Path(backbone.__file__).parent
# Internal errors: each is caught inside backbone and turned into a BackboneError or a result.
INTERNAL = {"ContractError", "RowError", "CorruptBackup", "PartitionError", "Interrupted", "TlsFailure"}


@functools.cache
def _defined_exceptions():
    found = {}
    for info in pkgutil.walk_packages([str(ROOT)], "backbone."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional driver (docker, kubernetes) absent here
            continue
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[name] = obj
    return found


def test_every_error_backbone_defines_derives_from_the_root_or_is_caught_inside():
    found = _defined_exceptions()
    for name in ("FaultError", "BackupDrillError", "SimulationInputError", "TopicsError", "FileFormatError",
                 "IngestRejected"):
        assert name in found, name
    outside = sorted(n for n, cls in found.items() if not issubclass(cls, BackboneError) and n not in INTERNAL)
    assert outside == [], f"errors outside the root: {outside}"
    source = "\n".join(p.read_text() for p in ROOT.rglob("*.py"))
    caught = {n.id if isinstance(n, ast.Name) else n.attr for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.ExceptHandler) and node.type is not None
              for n in ast.walk(node.type) if isinstance(n, (ast.Name, ast.Attribute))}
    assert INTERNAL - {"Interrupted"} <= caught, INTERNAL - caught  # Interrupted: main's KeyboardInterrupt


@pytest.mark.parametrize("name, code", [("FaultError", 1), ("BackupDrillError", 1), ("TopicsError", 1),
                                        ("SimulationInputError", 2), ("FileFormatError", 2), ("IngestRejected", 2)])
def test_the_six_errors_that_reach_the_cli_keep_their_exit_codes(name, code):
    cls = _defined_exceptions()[name]
    assert cls.exit_code == code and issubclass(cls, ConfigError) == (code == 2)
    if code == 2:
        assert issubclass(cls, ValueError)  # as before: callers catching ValueError still do


@pytest.mark.parametrize("error, code, prefix", [
    (lambda s: __import__("backbone.drills.faults", fromlist=["x"]).FaultError(f"kill pg-0: refused by {s}"), 1,
     "backbone: drill failed: kill pg-0: refused by ***"),
    (lambda s: ConfigError(f"--extra: {s} is not a port"), 2, "backbone: error: --extra: *** is not a port"),
])
def test_main_prints_an_error_once_redacted_and_without_a_traceback(monkeypatch, capsys, error, code, prefix):
    planted = "PLANTED-main-secret"

    def failing(args):
        drill_cli.contract_from(args)  # the contract's secrets are known to main from here on
        raise error(planted)

    monkeypatch.setattr(drill_cli, "cmd_plan", failing)
    got = cli.main(["drill", "plan", "--date", "2024-02-01", "--extra", f"REDIS_PASSWORD={planted}"])
    out, err = capsys.readouterr()
    assert got == code
    assert err == prefix + "\n", err
    assert planted not in out + err and "Traceback" not in err


def test_interrupted_stays_outside_the_root():
    assert issubclass(Interrupted, KeyboardInterrupt) and not issubclass(Interrupted, BackboneError)
