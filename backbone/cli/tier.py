"""`backbone tier plan | switch | rollback | complete | status`: move a deployment between
tiers (docs/tiers.md).

Every command takes the institutional contract (`--outputs` / `--stack`): it names both
ends, the services and the bootstrap store the deployment came from (`bootstrap.store`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import BackboneError, ConfigError
from ..report import EXIT_READY, Redactor
from .common import contract_from, err, folder, positive, remember, sources_args


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
    """(source contract, target contract, what clients load the target from): tier/ends.py."""
    from ..tier.ends import ends
    source, target, ref = ends(contract_from(args), args.outputs, args.stack)
    return remember(source), target, ref


def _drilled(operation: str, run, source, target, ref, args, say) -> int:
    from ..tier.drill_run import drilled
    done = drilled(operation, run, source, target, ref, report_dir=args.drill_report,
                   budget_s=args.cutover_timeout, say=say)
    sys.stdout.write(done.markdown)
    return done.exit_code


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
            return _drilled("switch", switch.run, source, target, ref, args, say)
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
    from ..tier.render import switch_text
    sys.stdout.write(switch_text(outcome, args.format, args.stop_after))
    return EXIT_READY


def cmd_status(args) -> int:
    from ..tier.render import status_text
    from ..tier.status import status
    source, target, _ref = _ends(args)
    sys.stdout.write(status_text(status(source, target), args.format))
    return EXIT_READY


def cmd_plan(args) -> int:
    from ..tier.ends import preflight
    from ..tier.plan import make_plan
    from ..tier.render import plan_text
    from .checks import plan_checks
    source, target, _ref = _ends(args)
    plan = make_plan(source, target, target.redis.cache_policy.max_keys if target.redis else 0)
    plan.preflight = preflight(target, plan_checks(target, "probe", 5.0))
    text = plan_text(plan, args.format)
    sys.stdout.write(text if args.format == "json" else Redactor(target.secrets()).scrub(text))
    return plan.exit_code


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
            return _drilled("rollback", run, source, target, ref, args, say)
        outcome = run()
    except SwitchError as exc:
        say(f"backbone: tier rollback: {exc}")
        return 1
    from ..tier.render import rollback_text
    sys.stdout.write(rollback_text(outcome, args.format))
    return EXIT_READY


def cmd_complete(args) -> int:
    from ..tier.rollback import complete
    source, target, _ref = _ends(args)
    redactor = Redactor(target.secrets())
    sys.stdout.write(complete(source, target, lambda t: err.print(redactor.scrub(t), markup=False)) + "\n")
    return EXIT_READY
