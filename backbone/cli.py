"""`backbone` command line: a thin layer over plain functions.

Exit codes: 0 ready (degraded is 0 with a warning unless --strict), 1 a check failed,
2 bad input or configuration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import __version__, cli_drill, cli_migrate
from . import cli_topics
from .checks import DEGRADED, Check, run_concurrently
from .checks_topics import topics_check
from .cli_migrate import migrations_check
from .contract import Contract
from .smoke import smoke_check
from .local import LocalEnvironment, LocalError
from .local.services import LocalUsageError
from .probes import plan_probes
from .report import EXIT_BAD_INPUT, EXIT_FAILED, Redactor, Report, render
from .cliutil import contract_from, emit, err, positive, report_args, sources_args
from .sources import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbone", description="Prove a data backbone deployment works.")
    parser.add_argument("--version", action="version", version=f"backbone {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (("validate", "post-deploy readiness: probes, migrations, topics and a smoke round trip "
                                    "in one report, with an exit code CI can gate on"),
                       ("probe", "the service probes only")):
        p = sub.add_parser(name, help=text, description=text)
        sources_args(p)
        report_args(p, formats=("markdown", "json", "junit"))
        p.add_argument("--timeout", type=positive, default=5.0, metavar="S", help="per-check timeout (default 5)")
        p.add_argument("--strict", action="store_true", help="treat degraded as failed (exit 1)")
        p.add_argument("--retry-timeout", type=positive, default=None, metavar="S",
                       help="keep re-checking a just-deployed environment for up to S seconds until it is ready")
        p.set_defaults(func=cmd_checks)

    p = sub.add_parser("manifest", help="the redaction-safe manifest of the environment")
    sources_args(p)
    report_args(p)
    p.set_defaults(func=cmd_manifest)

    cli_topics.register(sub)
    cli_migrate.register(sub)
    cli_drill.register(sub)

    local = sub.add_parser("local", help="real services on 127.0.0.1 for tests, CI and demos")
    lsub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    state_default = Path(os.environ.get("BACKBONE_STATE_DIR", ".backbone/local"))
    for name, text in (("up", "start PostgreSQL, Redis and Kafka; write <state-dir>/outputs.json"),
                       ("down", "stop what `up` started and remove the state directory"),
                       ("status", "show each service's state"),
                       ("stop", "stop one service (for outage tests)"),
                       ("start", "start a stopped service again")):
        p = lsub.add_parser(name, help=text, description=text)
        p.add_argument("--state-dir", type=Path, default=state_default,
                       help="where the environment lives (default .backbone/local, or $BACKBONE_STATE_DIR)")
        if name in ("stop", "start"):
            p.add_argument("service", help="timescale, redis, kafka, or one Kafka node such as kafka-2")
        if name == "up":
            p.add_argument("--kafka-brokers", type=int, default=1, metavar="N", help="KRaft nodes (default 1)")
            p.add_argument("--ha", action="store_true",
                           help="the HA topologies the staging stack declares: Patroni primary + replica (etcd), "
                                "Redis primary + replica + 3 Sentinels, 3 KRaft nodes")
            p.add_argument("--bare", action="store_true",
                           help="start the services only; skip `migrate apply` and `topics apply`")
        if name in ("up", "start"):
            p.add_argument("--timeout", type=positive, default=120.0, metavar="S",
                           help="how long to wait for readiness (default 120)")
        if name == "status":
            p.add_argument("--format", choices=("markdown", "json"), default="markdown")
        p.set_defaults(func=cmd_local)
    return parser


def plan_checks(contract: Contract, command: str, timeout_s: float) -> dict[str, Check]:
    checks = plan_probes(contract, timeout_s)
    if command == "validate":
        checks["migrations"] = lambda: migrations_check(contract, timeout_s)
        if contract.tier == "institutional":
            checks["topics"] = lambda: topics_check(contract, timeout_s)
        checks["smoke"] = lambda: smoke_check(contract, timeout_s)
    return checks


def cmd_checks(args) -> int:
    contract = contract_from(args)
    redactor = Redactor(contract.secrets())
    started = time.perf_counter()
    give_up = time.monotonic() + (args.retry_timeout or 0)
    attempt = 0
    while True:
        attempt += 1
        # Each check has its own timeout; one overall deadline bounds the lot.
        results = run_concurrently(plan_checks(contract, args.command, args.timeout), deadline_s=args.timeout + 2)
        report = Report(args.command, contract, results, time.perf_counter() - started, strict=args.strict)
        left = give_up - time.monotonic()
        if report.exit_code == 0 or left <= 0:
            break
        failing = ", ".join(f"{r.name} {r.status} ({r.code})" for r in results if r.status != "ok")
        err.print(redactor.scrub(f"[dim]{time.strftime('%H:%M:%S')}[/] attempt {attempt}: not ready: {failing}; "
                                 f"retrying for another {left:.0f} s"))
        time.sleep(min(2.0, max(0.0, left)))
    if attempt > 1:
        err.print(f"{report.verdict} after {attempt} attempts")
    emit(render(report, args.format, redactor), args.output, f"{report.status}: {report.verdict}")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a") as f:
                f.write(render(report, "markdown", redactor) + "\n")
        except OSError as exc:
            err.print(f"[yellow]warning:[/] cannot write GITHUB_STEP_SUMMARY ({exc.strerror})")
    if report.status == DEGRADED and not args.strict:
        names = ", ".join(r.name for r in results if r.status == DEGRADED)
        err.print(f"[yellow]warning:[/] degraded: {names} (exit 0; --strict makes this fail)")
    return report.exit_code


def cmd_manifest(args) -> int:
    contract = contract_from(args)
    manifest = contract.manifest()
    if args.format == "json":
        text = json.dumps(manifest, indent=2) + "\n"
    else:
        text = f"# Backbone manifest: {contract.environment}\n\n```json\n{json.dumps(manifest, indent=2)}\n```\n"
    emit(Redactor(contract.secrets()).scrub(text), args.output, "manifest")
    return 0


def cmd_local(args) -> int:
    env = LocalEnvironment(args.state_dir, progress=lambda m: err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {m}"))
    action = args.local_command
    if action == "up":
        outputs = env.up(kafka_brokers=args.kafka_brokers, timeout_s=args.timeout, provision=not args.bare,
                         ha=args.ha)
        err.print(f"[green]local environment is up[/]; validate it with: backbone validate --outputs {outputs}")
    elif action == "down":
        env.down()
        err.print("local environment is down")
    elif action == "stop":
        env.stop(args.service)
    elif action == "start":
        env.start(args.service, timeout_s=args.timeout)
    else:
        rows = env.status()
        if args.format == "json":
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            sys.stdout.write("| service | state | pid | address |\n|---|---|---|---|\n")
            for r in rows:
                sys.stdout.write(f"| {r['service']} | {r['state']} | {r['pid'] or '—'} | {r['address']} |\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, LocalUsageError) as exc:
        err.print(f"backbone: error: {exc}", markup=False)
        return EXIT_BAD_INPUT
    except LocalError as exc:
        err.print(f"backbone: {exc}", markup=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("backbone: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
