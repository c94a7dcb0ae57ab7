"""The environments the security tests judge: the secure ones `local up` starts by default
(single node: the session's `local_env`; HA: `ha_env`) and the same topologies started with
`--insecure`, against which every refusal test is run too and must find the door open, so a
refusal test can fail."""
import pytest

from ..conftest import local_environment


@pytest.fixture(scope="session")
def ha_env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "secure-ha", "--ha")


@pytest.fixture(scope="session")
def insecure_env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "insecure", "--insecure")


@pytest.fixture(scope="session")
def insecure_ha_env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "insecure-ha", "--ha", "--insecure")


@pytest.fixture(params=["secure", "insecure"])
def single(request):
    """Each single-node test twice: on the secure environment (the door must be shut) and on
    an --insecure one (the same attempt must get in)."""
    env = request.getfixturevalue("local_env" if request.param == "secure" else "insecure_env")
    return {**env, "secure": request.param == "secure"}


@pytest.fixture(params=["secure", "insecure"])
def ha(request):
    """As `single`, for the HA topologies (Patroni + etcd, Redis + Sentinel)."""
    env = request.getfixturevalue("ha_env" if request.param == "secure" else "insecure_ha_env")
    return {**env, "secure": request.param == "secure"}
