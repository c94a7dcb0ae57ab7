"""The drills' registries: a backend per platform implementing the whole protocol, a backup
drill per service with one signature, and the services and faults defined once."""
import importlib
import inspect
from pathlib import Path

import pytest

from backbone.cli import build_parser
from backbone.contract import Contract
from backbone.drills import rotation
from backbone.drills.backups import BACKUP_DRILLS, BackupOptions, BackupResult, backup_drill
from backbone.drills.faults import BACKENDS, FAULTS, SERVICES, BackendOptions, FaultBackend, backend_for
from backbone.errors import ConfigError


def _members(protocol):
    names = {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)
    return names


def _load(ref):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("platform", sorted(BACKENDS))
def test_every_platform_backend_implements_the_whole_protocol(platform):
    cls = _load(BACKENDS[platform])
    assert cls.platform == platform
    for name in _members(FaultBackend) - set(FaultBackend.__annotations__):
        assert hasattr(cls, name), f"{cls.__name__} lacks {name}"
        want = list(inspect.signature(getattr(FaultBackend, name)).parameters)
        got = list(inspect.signature(getattr(cls, name)).parameters)
        assert got == want, f"{cls.__name__}.{name}{got} != {want}"
    backend = cls.create(BackendOptions(state_dir=Path("/nonexistent")))
    assert backend.platform == platform and backend.partition_proof is None


def test_backend_for_picks_by_platform_and_refuses_one_without_services():
    pytest.importorskip("docker")
    assert type(backend_for(Contract(platform="docker"), BackendOptions(network="net"))).__name__ == "DockerFaults"
    with pytest.raises(ConfigError, match="platform 'embedded' has no services to drill"):
        backend_for(Contract(platform="embedded"), BackendOptions())


@pytest.mark.parametrize("service", sorted(BACKUP_DRILLS))
def test_every_backup_drill_has_the_one_signature(service):
    run = backup_drill(service)
    assert list(inspect.signature(run).parameters) == ["contract", "options"]
    result_type = inspect.signature(run).return_annotation
    cls = getattr(inspect.getmodule(run), result_type)
    for name in ("passed", "exit_code", "to_dict", "to_markdown"):
        assert hasattr(cls, name), f"{cls.__name__} lacks {name} ({BackupResult.__name__})"


def test_an_unknown_backup_drill_is_bad_input():
    with pytest.raises(ConfigError, match="no backup drill for 'etcd'"):
        backup_drill("etcd")


def test_services_and_faults_are_defined_once_and_the_cli_reads_them():
    assert rotation.SERVICES is SERVICES and set(rotation.FAILOVER_FAULTS) < set(FAULTS)
    assert set(BACKUP_DRILLS) == set(SERVICES)
    from backbone.drills.workloads import WORKLOADS
    assert set(WORKLOADS) == set(SERVICES)
    drill = next(a for a in build_parser()._subparsers._group_actions[0].choices["drill"]._actions
                 if a.dest == "drill_command").choices
    choices = {a.dest: a.choices for a in drill["run"]._actions} | \
        {f"backup_{a.dest}": a.choices for a in drill["backup"]._actions}
    assert tuple(choices["service"]) == SERVICES and tuple(choices["fault"]) == FAULTS
    assert tuple(choices["backup_service"]) == tuple(BACKUP_DRILLS)
    assert BackupOptions(Path("x")).given is None
