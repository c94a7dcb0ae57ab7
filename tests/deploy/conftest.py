"""The real engine on a real API server: one local API-only Kubernetes cluster for the session
(backbone/local/kubernetes.py) and a Pulumi project directory with a file backend, into which
`python -m infra.deploy` deploys, exactly as CI would.

The tools come from scripts/tools/build.sh (`make setup`). Skipped with the reason when they
are missing; in CI (CI set) a missing tool is a failure, never a skip.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from backbone.local.binaries import find_kube_binaries
from backbone.local.kubernetes import KubeCluster, start_cluster
from backbone.serviceconfig import deploy_tool

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `import infra` (the certificates' checks), as tests/infra does
    sys.path.insert(0, str(ROOT))
STACK = "staging"
NAMESPACE = "backbone-staging"
BUILD_HINT = "build them with `bash scripts/tools/build.sh` (part of `make setup`; about 45 minutes cold on 2 cores)"


def _require_tools() -> None:
    missing = [str(path) for path in (deploy_tool("pulumi"), deploy_tool("pulumi-resource-kubernetes"))
               if not path.is_file()]
    missing += find_kube_binaries().missing()
    if missing:
        reason = f"the real-engine deploy tools are missing ({', '.join(missing)}); {BUILD_HINT}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> KubeCluster:
    _require_tools()
    started = start_cluster(tmp_path_factory.mktemp("kube"), find_kube_binaries())
    yield started
    started.stop()


@dataclass
class Deployment:
    """The project directory, backend and environment every command of the tests runs with."""
    project: Path
    env: dict[str, str]
    cluster: KubeCluster

    def deploy(self, operation: str, timeout_s: float = 600) -> tuple[int, dict | None, str]:
        """`python -m infra.deploy OPERATION --stack staging --json`: (exit code, summary, stderr)."""
        proc = subprocess.run([sys.executable, "-m", "infra.deploy", operation, "--stack", STACK, "--json",
                               "--project-dir", str(self.project)], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout_s)
        summary = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
        return proc.returncode, summary, proc.stderr

    def pulumi(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["pulumi", *args, "--stack", STACK, "--non-interactive"], cwd=self.project,
                              env=self.env, input=stdin, capture_output=True, text=True, timeout=120)

    def config_set(self, key: str, value: str, *, path: bool = False, secret: bool = False) -> None:
        # the value on stdin: what a secret must never be is a process argument
        flags = [*(["--path"] if path else []), "--secret" if secret else "--plaintext"]
        done = self.pulumi("config", "set", *flags, f"backbone:{key}", stdin=value)
        assert done.returncode == 0, done.stderr

    def backbone(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "backbone", *args], cwd=self.project, env=self.env,
                              capture_output=True, text=True, timeout=300)

    def outputs(self) -> dict:
        shown = self.pulumi("stack", "output", "--json", "--show-secrets")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    def objects(self, plural: str, group: str = "") -> dict[str, dict]:
        """The namespace's objects of one kind, by name, straight from the API server."""
        base = f"/apis/{group}" if group else "/api/v1"
        return {item["metadata"]["name"]: item
                for item in self.cluster.get(f"{base}/namespaces/{NAMESPACE}/{plural}")["items"]}

    def namespace_gone(self, timeout_s: float = 120) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not any(item["metadata"]["name"] == NAMESPACE for item in self.cluster.get("/api/v1/namespaces")["items"]):
                return True
            time.sleep(1)
        return False


@pytest.fixture(scope="session")
def deployment(cluster, tmp_path_factory) -> Deployment:
    work = tmp_path_factory.mktemp("pulumi")
    project = work / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", f"Pulumi.{STACK}.yaml"):
        shutil.copy(ROOT / name, project / name)
    # the CLI checks that Pulumi.yaml's `main: infra/` exists (the inline program is imported)
    (project / "infra").symlink_to(ROOT / "infra")
    (work / "state").mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PULUMI_", "BACKBONE_", "KUBECONFIG"))}
    env.update({
        "PATH": f"{deploy_tool('pulumi').parent}{os.pathsep}{env.get('PATH', '')}",
        "PULUMI_HOME": str(work / "home"),
        "PULUMI_BACKEND_URL": f"file://{work / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(16),
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "KUBECONFIG": str(cluster.kubeconfig),
    })
    deployment = Deployment(project=project, env=env, cluster=cluster)
    # creates the stack on the backend and generates its secrets, as an operator does once
    code, _, stderr = deployment.deploy("secrets")
    assert code == 0, stderr
    return deployment
