"""`backbone tier plan | switch | rollback | complete | status`: move a deployment between
tiers (docs/tiers.md).

Every command takes the institutional contract (`--outputs` / `--stack`): it names both
ends, the services and the bootstrap store the deployment came from (`bootstrap.store`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import BackboneError, ConfigError
from ..report import EXIT_READY, Redactor
from .common import contract_from, err, folder, positive, sources_args


def register(sub) -> None:
    text = "move the deployment from the bootstrap tier to the institutional one and back, without losing a write"
    p = sub.add_parser("tier", help=text, description=text)
    tier = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    text = ("switch to the institutional tier: migrate, copy, catch up, verify, cut over inside a short write "
            "fence, replay the event log; resumable: rerun after an interruption")
    s = tier.add_parser("switch", help=text, description=text)
    _cutover_args(s, "the bootstrap store's")
    s.add_argument("--stop-after", choices=("migrate", "track", "copy", "catchup", "verify"),
                   help="stop once this phase is done (rerun to go on)")
    s.set_defaults(func=cmd_switch)

    text = "what a switch would move and how long it would take (a measured sample); writes nothing"
    pl = tier.add_parser("plan", help=text, description=text)
    sources_args(pl)
    pl.add_argument("--format", choices=("text", "json"), default="text")
    pl.set_defaults(func=cmd_plan)

    text = ("back to the bootstrap tier: mirror the reverse stream, fence institutional writes, apply and verify "
            "the final delta, flip; nothing written on the institutional tier is lost")
    rb = tier.add_parser("rollback", help=text, description=text)
    _cutover_args(rb, "the institutional tier's")
    rb.add_argument("--force", action="store_true",
                    help="roll back even when the institutional tier is unreachable, and report what is missing")
    rb.set_defaults(func=cmd_rollback)

    text = "end a switch: stop the reverse stream; the bootstrap store is kept, never deleted"
    c = tier.add_parser("complete", help=text, description=text)
    sources_args(c)
    c.set_defaults(func=cmd_complete)

    text = "the switch's phase, the active tier, what is left to move, the last verification"
    st = tier.add_parser("status", help=text, description=text)
    sources_args(st)
    st.add_argument("--format", choices=("text", "json"), default="text")
    st.set_defaults(func=cmd_status)


def _cutover_args(p, whose: str) -> None:
    sources_args(p)
    p.add_argument("--cutover-timeout", type=positive, default=3.0, metavar="S",
                   help=f"longest {whose} writes may be fenced (default 3 s)")
    p.add_argument("--cutover-retries", type=_attempts, default=3, metavar="N", help="cut-over attempts (default 3)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--drill", action="store_true", help=DRILL_HELP)
    p.add_argument("--drill-report", type=Path, metavar="DIR", help="where the drill writes its report and PNG")


def _attempts(raw: str) -> int:
    import argparse
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 100:
        raise argparse.ArgumentTypeError(f"expected a whole number of attempts from 1 to 100, got {raw!r}")
    return int(raw)


DRILL_HELP = ("run a writer and reader through the library in another process meanwhile; report the write "
              "pause, acknowledged writes lost, failed reads and a timeline PNG; exit 1 on a loss or a pause "
              "over the budget")


def _ends(args):
    """(source contract, target contract, what clients load the target from)."""
    from ..contract import Contract
    contract = contract_from(args)
    if contract.tier != "institutional" or contract.missing("timescale"):
        raise ConfigError("tier commands take the institutional contract (with its timescale section): "
                          "set backbone:tier to institutional, `pulumi up`, and pass its outputs")
    if contract.bootstrap is None:
        raise ConfigError("the institutional contract names no bootstrap store (bootstrap.store): export "
                          "backbone:bootstrap_store from the stack (docs/tiers.md)")
    if not Path(contract.bootstrap.store).exists():
        raise ConfigError(f"the bootstrap store {contract.bootstrap.store} does not exist")
    ref = {"outputs": str(Path(args.outputs).resolve())} if args.outputs else {"stack": args.stack} \
        if args.stack else None
    if ref is None:
        raise ConfigError("name the institutional contract with --outputs FILE or --stack NAME: clients that "
                          "follow the switch load it from there")
    source = Contract(tier="bootstrap", bootstrap=contract.bootstrap, data=contract.data)
    return source, contract, ref


def cmd_switch(args) -> int:
    from ..tier.switch import Options, Switch, SwitchError
    source, target, ref = _ends(args)
    if args.drill_report is not None:
        folder(args.drill_report, "--drill-report", own=True)
    redactor = Redactor(target.secrets())

    def say(text: str) -> None:
        err.print(redactor.scrub(text), markup=False)

    switch = Switch(source, target, ref, Options(args.cutover_timeout, args.cutover_retries,
                                                 stop_after=args.stop_after), say)
    try:
        if args.drill:
            from ..tier.drill_run import drilled
            return drilled("switch", switch.run, source, target, ref, args, say)
        outcome = switch.run()
    except SwitchError as exc:
        say(f"backbone: tier switch: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted: the bootstrap tier stays active unless the cut-over had finished; rerun to go on")
        return 130
    except (BackboneError, ConfigError):
        raise
    except Exception as exc:  # a service error: said in one line, resumable by a rerun
        say(f"backbone: tier switch failed: {type(exc).__name__}: {exc}; rerun to resume from the checkpoint")
        return 1
    finally:
        switch.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(outcome.__dict__, default=lambda o: o.__dict__) + "\n")
    elif outcome.already:
        sys.stdout.write(f"already switched: the institutional tier is active (cut-over {outcome.active.epoch}, "
                         f"{outcome.active.since}); nothing to do\n")
    elif args.stop_after:
        sys.stdout.write(f"stopped after {args.stop_after}; rerun `backbone tier switch` to go on\n")
    else:
        fence = f"{outcome.fence_ms[-1]:.0f} ms" if outcome.fence_ms else "-"
        sys.stdout.write(f"switched: the institutional tier is active (write fence {fence}, "
                         f"{sum(outcome.copied.values()):,} rows copied, {outcome.caught_up:,} changes caught up, "
                         f"{outcome.replayed:,} events replayed); the reverse stream runs until `tier complete`\n")
    return EXIT_READY


def cmd_status(args) -> int:
    from ..tier.status import status
    source, target, _ref = _ends(args)
    report = status(source, target)
    if args.format == "json":
        sys.stdout.write(json.dumps(report) + "\n")
        return EXIT_READY
    for key, value in report.items():
        sys.stdout.write(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}\n")
    return EXIT_READY


def cmd_plan(args) -> int:
    from ..tier.plan import make_plan
    source, target, _ref = _ends(args)
    plan = make_plan(source, target, target.redis.cache_policy.max_keys if target.redis else 0)
    plan.preflight = _preflight(target)
    data = plan.to_dict()
    if args.format == "json":
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        out = [f"active tier: {plan.active}", "", "| table | rows to move | on the target now |", "|---|---:|---:|"]
        out += [f"| {t} | {n:,} | {'-' if plan.on_target.get(t) is None else f'{plan.on_target[t]:,}'} |"
                for t, n in plan.rows.items()]
        out += ["", f"events to replay into Kafka: {plan.events:,}; cache keys to warm: {plan.cache_keys:,}"]
        if plan.estimate_s is not None:
            out.append(f"estimated copy: {plan.estimate_s:.1f} s (sample: {plan.sample_rows_per_s:,.0f} rows/s)")
        held = [t for t, n in plan.on_target.items() if n]
        if held:
            out.append(f"the target already holds rows in {', '.join(held)}: the switch keeps them and verifies "
                       "them against the bootstrap store; a difference stops it before the cut-over")
        out += ["", "preflight:"] + [f"- {p['check']}: {p['status']} ({p['summary']})" for p in plan.preflight]
        out.append("blockers: " + ("; ".join(plan.blockers) if plan.blockers else "none"))
        sys.stdout.write(Redactor(target.secrets()).scrub("\n".join(out)) + "\n")
    return 1 if plan.blockers else EXIT_READY


def _preflight(target) -> list[dict]:
    """The target's service probes and topics must be ok; migrations behind head are fine
    (the switch's first phase migrates the target) and are reported as such."""
    from ..checks.runner import run_concurrently
    from ..migrate.check import migrations_check
    from ..topics.check import topics_check
    from .checks import plan_checks
    checks = plan_checks(target, "probe", 5.0)
    checks["migrations"] = lambda: migrations_check(target, 5.0)
    if target.kafka is not None:
        checks["topics"] = lambda: topics_check(target, 5.0)
    found = []
    for r in run_concurrently(checks, 20.0):
        status, summary = r.status, r.message
        if r.name == "migrations" and r.status != "ok" and r.code not in ("unreachable", "timeout", "auth_failed"):
            status, summary = "ok", f"{r.message} (the switch migrates the target first)"
        found.append({"check": r.name, "status": status, "summary": summary})
    return found


def cmd_rollback(args) -> int:
    from ..tier.rollback import rollback
    from ..tier.switch import Options, SwitchError
    source, target, ref = _ends(args)
    if args.drill_report is not None:
        folder(args.drill_report, "--drill-report", own=True)
    redactor = Redactor(target.secrets())

    def say(text: str) -> None:
        err.print(redactor.scrub(text), markup=False)

    def run():
        return rollback(source, target, Options(args.cutover_timeout, args.cutover_retries), args.force, say)

    try:
        if args.drill:
            from ..tier.drill_run import drilled
            return drilled("rollback", run, source, target, ref, args, say)
        outcome = run()
    except SwitchError as exc:
        say(f"backbone: tier rollback: {exc}")
        return 1
    if args.format == "json":
        sys.stdout.write(json.dumps(outcome.__dict__) + "\n")
    else:
        sys.stdout.write(f"rolled back: the bootstrap tier is active (cut-over {outcome.epoch}, write fence "
                         f"{outcome.fence_ms[-1] if outcome.fence_ms else 0:.0f} ms, {outcome.mirrored:,} change(s) "
                         "mirrored)\n" if not outcome.forced else
                         f"forced rollback: the bootstrap tier is active; NOT on the bootstrap side: "
                         f"{outcome.not_on_bootstrap['missing']}\n")
    return EXIT_READY


def cmd_complete(args) -> int:
    from ..tier.rollback import complete
    source, target, _ref = _ends(args)
    redactor = Redactor(target.secrets())
    sys.stdout.write(complete(source, target, lambda t: err.print(redactor.scrub(t), markup=False)) + "\n")
    return EXIT_READY
