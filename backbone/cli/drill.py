"""`backbone drill run | backup | plan`: live failover drills, the seeds' simulated drill, the
backup / restore drills, and the quarterly rotation."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import ConfigError
from ..report import EXIT_READY, Redactor
from .common import contract_from, emit, err, folder, positive, require, sources_args

# the choices come from the drills' registries (light modules: strings and a Protocol)
from ..drills.backups import BACKUP_DRILLS
from ..drills.faults import FAULTS, SERVICES, TARGETS


def register(sub) -> None:
    p = sub.add_parser("drill", help="failover and recovery drills, measured against the objectives")
    dsub = p.add_subparsers(dest="drill_command", required=True, metavar="ACTION")
    run = dsub.add_parser("run", help="inject a fault while writing; measure detection, RTO and lost writes",
                          description="Live drill: a continuous writer records every acknowledgement, the fault "
                                      "is injected, and every acknowledged record is read back after recovery. "
                                      "With --simulate, replays recorded ingest results instead (no service).")
    sources_args(run)
    run.add_argument("--service", choices=SERVICES)
    run.add_argument("--fault", choices=FAULTS, default="kill")
    run.add_argument("--target", choices=TARGETS, default="primary",
                     help="which member: the primary / leader (default), Kafka's controller, or a replica")
    run.add_argument("--state-dir", type=Path, default=None,
                     help="the local environment (platform local); default: the directory of --outputs when it "
                          "holds one, else $BACKBONE_STATE_DIR or .backbone/local")
    run.add_argument("--namespace", default="backbone", help="kubernetes namespace (platform kubernetes)")
    run.add_argument("--network", default="backbone", help="docker network (platform docker, partition faults)")
    run.add_argument("--warmup", type=positive, default=2.0, metavar="S", help="writes before the fault (default 2)")
    run.add_argument("--max-outage", type=positive, default=60.0, metavar="S",
                     help="give up waiting for writes to resume after S seconds (default 60)")
    run.add_argument("--output-dir", type=Path, default=Path("drills"), help="JSON, Markdown and PNG go here")
    run.add_argument("--format", choices=("markdown", "json"), default="markdown")
    run.add_argument("--plan", type=Path, metavar="FILE",
                     help="run a quarter's scenarios from `drill plan --format json` in sequence: one combined "
                          "report and one figure with a panel per drill")
    run.add_argument("--simulate", action="store_true", help="replay recorded ingest results; touch no service")
    run.add_argument("--results", type=Path, metavar="FILE", help="recorded ingest results (JSON) for --simulate")
    run.add_argument("--fail-dimension", action="append", default=[], metavar="NAME",
                     help="dimension to mark failed in --simulate (repeatable; default: every recorded one)")
    run.set_defaults(func=cmd_run)

    backup = dsub.add_parser("backup", help="backup / restore drill: back up, restore into a scratch copy, compare, "
                                            "time the restore against the RTO and the backup's age against the RPO")
    sources_args(backup)
    backup.add_argument("--service", choices=tuple(BACKUP_DRILLS), default="timescale",
                        help="timescale: pg_dump -> scratch database (default); redis: BGSAVE snapshot -> scratch "
                             "redis-server; kafka: topic configs, group offsets and records -> scratch cluster")
    backup.add_argument("--dump", type=Path, metavar="FILE",
                        help="restore this existing backup file: a pg_dump -Fc file (timescale) or an RDB "
                             "snapshot (redis); its age is checked against the RPO. Default: take one now")
    backup.add_argument("--backup", type=Path, metavar="DIR",
                        help="kafka: restore this existing export directory (its age is checked against the RPO)")
    backup.add_argument("--topic", action="append", default=[], metavar="NAME",
                        help="kafka: only this declared topic (repeatable; default: every declared topic)")
    backup.add_argument("--work-dir", type=Path, default=Path("drills"), help="where a fresh backup is written")
    backup.add_argument("--state-dir", type=Path, default=None,
                        help="the local environment (platform local), whose operator account takes the backup; "
                             "default: the directory of --outputs when it holds one, else $BACKBONE_STATE_DIR "
                             "or .backbone/local")
    backup.add_argument("--timeout", type=positive, default=600.0, metavar="S")
    backup.add_argument("--format", choices=("markdown", "json"), default="markdown")
    backup.add_argument("--output", type=Path, metavar="PATH")
    backup.set_defaults(func=cmd_backup)

    text = ("the quarterly rotation: per service, the quarter's scenario (failover, partition, backup / restore), "
            "the exact command, the objectives and what to watch; pure, touches no service")
    plan = dsub.add_parser("plan", help=text, description=text)
    sources_args(plan)
    plan.add_argument("--date", type=_date, required=True, metavar="YYYY-MM-DD", help="a day of the quarter to plan")
    plan.add_argument("--format", choices=("markdown", "json"), default="markdown")
    plan.add_argument("--output", type=Path, metavar="FILE")
    plan.set_defaults(func=cmd_plan)


def _date(raw: str):
    import argparse
    import datetime as dt
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {raw!r}") from None


def cmd_plan(args) -> int:
    from ..drills.rotation import plan_for, to_markdown
    objectives, source = None, "--outputs OUTPUTS"
    if args.outputs or args.stack:
        objectives = contract_from(args).objectives
        source = f"--outputs {args.outputs}" if args.outputs else f"--stack {args.stack}"
    plan = plan_for(args.date, objectives, source)
    text = json.dumps(plan.to_dict(), indent=2) + "\n" if args.format == "json" else to_markdown(plan)
    emit(text, args.output, f"drill plan {plan.label}")
    return EXIT_READY


def local_state_dir(args) -> Path:
    """Where the local environment lives: --state-dir, else the directory `local up` wrote
    the --outputs file into (it holds state.json beside it), else the default."""
    if args.state_dir is not None:
        return args.state_dir
    if args.outputs is not None and (args.outputs.parent / "state.json").is_file():
        return args.outputs.parent
    return Path(os.environ.get("BACKBONE_STATE_DIR", ".backbone/local"))


def _backend(contract, args, progress):
    from ..drills.faults import BackendOptions, backend_for
    return backend_for(contract, BackendOptions(local_state_dir(args), namespace=args.namespace,
                                                network=args.network, progress=progress))


def cmd_run(args) -> int:
    if args.simulate:
        return cmd_simulate(args)
    if args.plan is not None:
        return cmd_run_plan(args)
    if args.service is None:
        raise ConfigError("--service is required for a live drill (timescale, redis or kafka)")
    folder(args.output_dir, "--output-dir", create=False, own=True)
    contract = contract_from(args)
    if contract.tier != "institutional":
        raise ConfigError("a live drill needs the institutional tier; the bootstrap tier has only --simulate")
    require(contract, f"drill run --service {args.service}", args.service)
    from ..drills.render import timeline_png, to_markdown
    from ..drills.session import live_drill

    redactor = Redactor(contract.secrets())

    def progress(message: str) -> None:
        err.print(redactor.scrub(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}"))

    result = live_drill(contract, _backend(contract, args, progress), args.service, args.fault, args.target,
                        warmup_s=args.warmup, max_outage_s=args.max_outage, progress=progress)
    stem = f"drill-{args.service}-{args.fault}-{time.strftime('%Y%m%dT%H%M%S')}"
    out = args.output_dir
    png = timeline_png(result, out / f"{stem}.png")
    markdown = to_markdown(result, png)
    data = result.to_dict() | {"timeline_png": str(png)}
    (out / f"{stem}.json").write_text(redactor.scrub(json.dumps(data, indent=2)))
    (out / f"{stem}.md").write_text(redactor.scrub(markdown))
    err.print(f"timeline: {png}")
    emit(redactor.scrub(json.dumps(data, indent=2) + "\n" if args.format == "json" else markdown), None, "drill")
    return result.exit_code


def cmd_run_plan(args) -> int:
    from ..drills import quarter
    from ..drills.rotation import load_plan
    if args.service is not None:
        raise ConfigError("--plan names its own services; leave out --service")
    plan = load_plan(args.plan)
    folder(args.output_dir, "--output-dir", create=False, own=True)
    contract = contract_from(args)
    if contract.tier != "institutional":
        raise ConfigError("a drill rotation needs the institutional tier")
    redactor = Redactor(contract.secrets())

    def progress(message: str) -> None:
        err.print(redactor.scrub(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}"))

    outcomes = quarter.run_plan(plan, contract, _backend(contract, args, progress), args.output_dir,
                                warmup_s=args.warmup, max_outage_s=args.max_outage, progress=progress)
    stem = f"drill-rotation-{plan.label}-{time.strftime('%Y%m%dT%H%M%S')}"
    png = quarter.figure(plan, outcomes, args.output_dir / f"{stem}.png")
    markdown, data = quarter.to_markdown(plan, outcomes, png), quarter.to_json(plan, outcomes)
    (args.output_dir / f"{stem}.md").write_text(redactor.scrub(markdown))
    (args.output_dir / f"{stem}.json").write_text(redactor.scrub(data))
    err.print(f"figure: {png}")
    emit(redactor.scrub(data if args.format == "json" else markdown), None, "drill rotation")
    return outcomes.exit_code


def cmd_simulate(args) -> int:
    from ..drills.simulate import load_results, simulate_failover
    if args.results is None:
        raise ConfigError("--simulate needs --results FILE (recorded ingest results, JSON)")
    drill = simulate_failover(load_results(args.results), args.fail_dimension or None)
    text = json.dumps(drill.to_dict(), indent=2) + "\n" if args.format == "json" else drill.to_markdown()
    emit(text, None, "simulated drill")
    return drill.exit_code


def cmd_backup(args) -> int:
    from ..drills.backups import BackupOptions, run_backup
    contract = contract_from(args)
    if contract.tier != "institutional":
        raise ConfigError(f"the backup drill needs the institutional tier (a {args.service} service)")
    require(contract, "drill backup", args.service)
    if args.service == "kafka" and args.dump is not None:
        raise ConfigError("--dump is a backup file (timescale, redis); for kafka give an export directory with --backup")
    if args.service != "kafka" and (args.backup is not None or args.topic):
        raise ConfigError("--backup and --topic belong to the kafka drill; for timescale and redis give --dump FILE")
    folder(args.work_dir, "--work-dir", create=False, own=True)
    if args.output is not None:
        folder(args.output.parent, f"--output {args.output}", create=False)
    redactor = Redactor(contract.secrets())
    given = args.dump or args.backup
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {args.service} backup / restore drill: "
              + (f"restoring {given}" if given else "taking a backup, then restoring it"))
    drill = run_backup(args.service, contract, BackupOptions(
        args.work_dir, given=given, topics=tuple(args.topic) or None, timeout_s=args.timeout,
        progress=lambda m: err.print(redactor.scrub(m), markup=False),
        state_dir=local_state_dir(args) if contract.platform == "local" else None))
    text = json.dumps(drill.to_dict(), indent=2) + "\n" if args.format == "json" else drill.to_markdown()
    emit(redactor.scrub(text), args.output, f"{args.service} backup drill")
    return drill.exit_code

