"""`python -m infra.deploy`: deploy a stack with the real Pulumi engine where no Python language
host is installed (CI), running the same program `pulumi up` runs.

    python -m infra.deploy secrets --stack staging    # generate the stack's missing secrets once
    (from the repository's root directory)
    python -m infra.deploy up      --stack staging    # also: preview, destroy

Needs a state backend (--backend or PULUMI_BACKEND_URL, e.g. file:///path) and the
passphrase its secrets are encrypted with (PULUMI_CONFIG_PASSPHRASE[_FILE]). The CLI's
progress goes to stderr; `--json` prints what changed (per resource: the step and the
properties that differ, never their values) on stdout. Exit codes: 0 done; 1 the engine
failed; 2 bad input or config (the CLI's schema check or the program's spec check).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `python -m infra.deploy` from anywhere: `import infra`, `backbone`
    sys.path.insert(0, _ROOT)

from infra.deploy.workspace import DeployInputError, ensure_secrets, open_workspace, select_stack  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n\n")[0])
    p.add_argument("operation", choices=["secrets", "up", "preview", "destroy"])
    p.add_argument("--stack", required=True, help="stack name (created on the backend when missing)")
    p.add_argument("--project-dir", type=Path,
                   help="directory of Pulumi.yaml, the stack files and infra/ (a link will do; default: the repo)")
    p.add_argument("--backend", help="state backend URL (default: $PULUMI_BACKEND_URL)")
    p.add_argument("--json", action="store_true", help="print the change summary as JSON on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        # generating secrets runs no program: a docker stack's needs no Kubernetes plugin
        workspace = open_workspace(args.project_dir, args.backend, plugins=args.operation != "secrets")
        select_stack(workspace, args.stack)
        created = ensure_secrets(workspace, args.stack) if args.operation in ("secrets", "up", "preview") else []
        if created:
            print(f"generated {len(created)} secret(s) into stack {args.stack}'s config: {', '.join(created)}",
                  file=sys.stderr)
        if args.operation == "secrets":
            return 0
        from infra.deploy.run import DeployFailed, run
        try:
            summary = run(workspace, args.stack, args.operation)
        except DeployFailed as failed:
            print(f"{args.operation} of stack {args.stack} failed:\n{failed}", file=sys.stderr)
            return 2 if failed.bad_config else 1
    except DeployInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.as_json(), indent=2))
    else:
        changed = ", ".join(f"{n} {op}" for op, n in summary.changes.items()) or "nothing"
        print(f"{args.operation} of stack {args.stack}: {changed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
