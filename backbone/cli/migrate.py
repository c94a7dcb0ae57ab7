"""`backbone migrate plan | apply | check`."""
from __future__ import annotations

import json
import time

from ..report import EXIT_FAILED, EXIT_READY, Redactor
from .common import contract_from, emit, err, positive, report_args, require, sources_args


def register(sub) -> None:
    p = sub.add_parser("migrate", help="versioned schema and Timescale policies: plan, apply, check")
    msub = p.add_subparsers(dest="migrate_command", required=True, metavar="ACTION")
    for name, text in (("plan", "print the SQL apply would run; nothing is written"),
                       ("apply", "run pending migrations and bring Timescale policies in line"),
                       ("check", "exit 1 on a pending migration or drift, naming each difference")):
        a = msub.add_parser(name, help=text, description=text)
        sources_args(a)
        report_args(a)
        a.add_argument("--timeout", type=positive, default=10.0, metavar="S", help="connect timeout (default 10)")
        if name == "check":
            a.add_argument("--strict", action="store_true", help="treat degraded as failed (exit 1)")
        a.set_defaults(func=run)


def run(args) -> int:
    from ..checks import DEGRADED, DOWN
    from ..migrate.check import database_errors, migrations_check, reason, timescale_note

    contract = contract_from(args)
    require(contract, f"migrate {args.migrate_command}", "timescale")
    redactor = Redactor(contract.secrets())
    action = args.migrate_command
    try:
        if action in ("plan", "apply"):
            from ..migrate import ops as migrate
            engine = migrate.engine_for(contract, args.timeout, duty="owner")
        if action == "plan":
            state, sql = migrate.render_plan(engine, contract)
            data = {"action": "plan", "current": state.current, "head": state.head, "pending": state.pending,
                    "statements": sql}
            text = ("# Migration plan\n\n" + (f"From `{state.current or 'empty'}` to `{state.head}`.\n\n")
                    + ("```sql\n" + "\n\n".join(sql) + "\n```\n" if sql else "Nothing to do: up to date.\n"))
            code = EXIT_READY
        elif action == "apply":
            before = time.perf_counter()
            state, counter = migrate.apply(engine, contract)
            data = {"action": "apply", "head": state.head, "writes": counter.writes, "reads": counter.reads,
                    "duration_s": round(time.perf_counter() - before, 3), "drift": state.drift}
            text = (f"# Migrations applied\n\nAt `{state.head}`; {counter.writes} write statement(s), "
                    f"{counter.reads} read(s) in {data['duration_s']} s.\n")
            note = timescale_note(contract, state)
            if note:
                text += f"\nNote: {note[1]}.\n"
            code = EXIT_READY if not state.drift else EXIT_FAILED
        else:
            result = migrations_check(contract, args.timeout)
            data = result.to_dict()
            text = f"# Migration check: {result.status}\n\n{result.message}\n"
            if result.details.get("drift"):
                text += "\n" + "".join(f"- {d}\n" for d in result.details["drift"])
            if result.error:
                text += f"\nError: {result.error}\n"
            code = EXIT_FAILED if result.status == DOWN or (args.strict and result.status == DEGRADED) else EXIT_READY
            if result.status == DEGRADED and not args.strict:
                err.print(f"[yellow]warning:[/] {result.message}")
    except database_errors() as exc:
        err.print(redactor.scrub(f"backbone: migrate {action} failed: {reason(exc)}"), markup=False)
        return EXIT_FAILED
    out = json.dumps(data, indent=2) + "\n" if args.format == "json" else text
    emit(redactor.scrub(out), args.output, f"migrate {action}")
    return code
