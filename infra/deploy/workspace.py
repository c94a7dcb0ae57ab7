"""The Pulumi workspace a deploy runs in: the CLI, the Kubernetes provider plugin, the
backend and passphrase, the stack and its generated secrets.

Nothing here is fetched: the CLI and the plugin are the binaries scripts/tools/build.sh
built (or ones named by $BACKBONE_PULUMI / $BACKBONE_PULUMI_KUBERNETES, or `pulumi` on
PATH), the plugin is installed from its file, and automatic plugin acquisition is off.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backbone.serviceconfig import PULUMI_KUBERNETES_VERSION, deploy_tool

from infra import certificates
from infra.generated import ENCRYPTED_KEYS, SECRET_KEYS, generate
from infra.spec_errors import PROJECT

ROOT = Path(__file__).resolve().parents[2]


class DeployInputError(ValueError):
    """Bad input or a missing prerequisite (exit 2); the message says what to do."""


@dataclass(frozen=True)
class Workspace:
    pulumi: Path
    project_dir: Path
    env: dict[str, str]  # what the CLI (and the plugins it starts) run with

    def cli(self, *args: str, stack: str | None = None, stdin: str | None = None,
            timeout_s: float = 300) -> subprocess.CompletedProcess:
        argv = [str(self.pulumi), *args, *(["--stack", stack] if stack else []), "--non-interactive"]
        return subprocess.run(argv, cwd=self.project_dir, env={**os.environ, **self.env}, input=stdin,
                              capture_output=True, text=True, timeout=timeout_s)


def open_workspace(project_dir: Path | None = None, backend: str | None = None,
                   plugins: bool = True) -> Workspace:
    """Check the prerequisites and (`plugins`) install the Kubernetes plugin when it is missing."""
    project_dir = (project_dir or ROOT).resolve()
    if not (project_dir / "Pulumi.yaml").is_file():
        raise DeployInputError(f"{project_dir} holds no Pulumi.yaml: pass the project directory with --project-dir")
    backend = backend or os.environ.get("PULUMI_BACKEND_URL")
    if not backend:
        raise DeployInputError("no state backend: pass --backend (e.g. file:///var/lib/backbone/pulumi-state) "
                               "or set PULUMI_BACKEND_URL")
    if not (os.environ.get("PULUMI_CONFIG_PASSPHRASE") is not None or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        raise DeployInputError("set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE: the stack's "
                               "secrets are encrypted with it")
    env = {"PULUMI_BACKEND_URL": backend,
           # Never download a plugin or check for a newer CLI: this machine reaches no such host.
           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
           "PULUMI_SKIP_UPDATE_CHECK": "true"}
    workspace = Workspace(pulumi=_pulumi(), project_dir=project_dir, env=env)
    if plugins:
        _ensure_kubernetes_plugin(workspace)
    return workspace


def _pulumi() -> Path:
    configured = os.environ.get("BACKBONE_PULUMI")
    for candidate in ([Path(configured)] if configured else
                      [deploy_tool("pulumi"), Path(shutil.which("pulumi") or "/nonexistent")]):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise DeployInputError("no pulumi CLI: run `bash scripts/tools/build.sh pulumi` (or `make setup`), "
                           "or set BACKBONE_PULUMI to one")


def _ensure_kubernetes_plugin(workspace: Workspace) -> None:
    listed = workspace.cli("plugin", "ls", "--json")
    plugins = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
    if any(p.get("name") == "kubernetes" and p.get("kind") == "resource"
           and p.get("version") == PULUMI_KUBERNETES_VERSION for p in plugins or []):
        return
    configured = os.environ.get("BACKBONE_PULUMI_KUBERNETES")
    binary = Path(configured) if configured else deploy_tool("pulumi-resource-kubernetes")
    if not binary.is_file():
        raise DeployInputError(f"the Kubernetes provider {PULUMI_KUBERNETES_VERSION} is not installed and {binary} "
                               "does not exist: run `bash scripts/tools/build.sh provider` (or `make setup`)")
    installed = workspace.cli("plugin", "install", "resource", "kubernetes", PULUMI_KUBERNETES_VERSION,
                              "--file", str(binary))
    if installed.returncode != 0:
        raise DeployInputError(f"installing the Kubernetes provider plugin failed: {last_error(installed.stderr)}")


def select_stack(workspace: Workspace, stack: str) -> None:
    """The stack, created when the backend has none by that name."""
    selected = workspace.cli("stack", "select", "--create", stack)
    if selected.returncode != 0:
        raise DeployInputError(f"stack {stack}: {last_error(selected.stderr)}")


def ensure_secrets(workspace: Workspace, stack: str) -> list[str]:
    """Generate each of the stack's missing secrets (infra/generated.py) once, and issue its
    TLS material (infra/certificates.py: a CA once, a service's certificate when missing,
    no longer matching the stack's namespace or platform, or due for renewal); the keys set.

    The value goes to `pulumi config set` on standard input, never as an argument
    (arguments are visible to every user of the machine)."""
    listed = workspace.cli("config", "--json", "--show-secrets", stack=stack)
    if listed.returncode != 0:
        raise DeployInputError(f"stack {stack}: reading its config failed: {last_error(listed.stderr)}")
    present = json.loads(listed.stdout or "{}")
    for key in ENCRYPTED_KEYS:
        entry = present.get(f"{PROJECT}:{key}")
        if entry is not None and not entry.get("secret"):
            raise DeployInputError(f"stack {stack}: {PROJECT}:{key} is set in plain text; set it again with "
                                   f"`pulumi config set --secret {PROJECT}:{key}`")
    wanted = {key: generate(key) for key in SECRET_KEYS if f"{PROJECT}:{key}" not in present}
    values = {key[len(PROJECT) + 1:]: entry.get("value") for key, entry in present.items()
              if key.startswith(f"{PROJECT}:")}
    wanted.update(certificates.material(stack, str(values.get("platform") or "docker"),
                                        str(values.get("namespace") or "backbone"),
                                        {k: v for k, v in values.items() if isinstance(v, str)}))
    created = []
    for key, value in wanted.items():
        secret = "--secret" if key in ENCRYPTED_KEYS else "--plaintext"
        done = workspace.cli("config", "set", secret, f"{PROJECT}:{key}", stack=stack, stdin=value)
        if done.returncode != 0:
            raise DeployInputError(f"stack {stack}: setting {PROJECT}:{key} failed: {last_error(done.stderr)}")
        created.append(key)
    return created


def last_error(stderr: str) -> str:
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no message"])[-1]
