"""The deploy tools' versions are written down three times: scripts/tools/versions.env (what
scripts/tools/build.sh builds), backbone/serviceconfig.py (where the tests and
`python -m infra.deploy` look for them) and pyproject.toml (the SDK pin the provider plugin
must match). They must agree, or the engine asks for a plugin that is not installed."""
import re
import tomllib
from pathlib import Path

from backbone import serviceconfig as sc

REPO = Path(__file__).resolve().parents[2]


def versions_env() -> dict[str, str]:
    lines = (REPO / "scripts" / "tools" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_build_script_and_the_package_pin_the_same_versions():
    env = versions_env()
    assert env["PULUMI_VERSION"] == sc.PULUMI_VERSION
    assert env["PULUMI_KUBERNETES_VERSION"] == sc.PULUMI_KUBERNETES_VERSION
    assert env["KUBERNETES_VERSION"] == sc.KUBERNETES_VERSION
    assert re.fullmatch(r"v4\.0\.0-\d{14}-[0-9a-f]{12}", env["PULUMI_KUBERNETES_MODULE"])


def test_the_kubernetes_sdk_is_pinned_to_the_plugin_release():
    infra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["infra"]
    assert f"pulumi-kubernetes=={sc.PULUMI_KUBERNETES_VERSION}" in infra
    assert all("==" in requirement for requirement in infra)
    constraints = (REPO / "scripts" / "constraints" / "infra.txt").read_text()
    for requirement in infra:
        assert requirement in constraints


def test_tools_are_cached_by_version(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKBONE_TOOLS", str(tmp_path))
    assert sc.deploy_tool("pulumi") == tmp_path / f"pulumi-{sc.PULUMI_VERSION}" / "bin" / "pulumi"
    assert sc.deploy_tool("kube-apiserver").parent.parent.name == f"kubernetes-{sc.KUBERNETES_VERSION}"
