"""`backbone validate | probe | manifest`. `validate` assembles the concepts' own readiness
checks; it owns none of them."""
from __future__ import annotations

import json
import os
import time

from .common import contract_from, emit, err, positive, report_args, sources_args


def register(sub) -> None:
    for name, text in (("validate", "post-deploy readiness: probes, TLS and exposure per service, migrations, topics, "
                                    "a smoke round trip and the data path (ingest freshness, outbox backlog, consumer "
                                    "lag, cache ratios) in one report, with an exit code CI can gate on"),
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


# The contract sections each check reads (institutional tier); a missing one is reported
# as such rather than run.
NEEDS = {"timescale": ("timescale",), "redis": ("redis",), "kafka": ("kafka",), "migrations": ("timescale",),
         "topics": ("kafka",), "smoke": ("timescale", "redis", "kafka"),
         **{f"freshness.{d}": ("timescale",) for d in ("bars", "trades", "macro")},
         "outbox": ("timescale",), "consumer_lag": ("kafka",), "cache_ratios": ("redis",),
         **{f"{kind}.{s}": (s,) for kind in ("tls", "exposure") for s in ("timescale", "redis", "kafka")}}


def plan_checks(contract, command: str, timeout_s: float) -> dict:
    """name -> check, for `probe` (the service probes) or `validate` (everything)."""
    from ..probes import plan_probes
    checks = plan_probes(contract, timeout_s)
    if command == "validate":
        from ..security import security_checks
        checks.update(security_checks(contract, timeout_s))
        from ..probes.smoke import smoke_check
        from ..migrate.check import migrations_check
        checks["migrations"] = lambda: migrations_check(contract, timeout_s)
        if contract.tier == "institutional":
            from ..topics.check import topics_check
            checks["topics"] = lambda: topics_check(contract, timeout_s)
        checks["smoke"] = lambda: smoke_check(contract, timeout_s)
        checks.update(data_checks(active_contract(contract, timeout_s), timeout_s))
    for name in checks:
        missing = contract.missing(*NEEDS.get(name, ()))
        if missing:
            checks[name] = _not_configured(name, missing)
    return checks


def data_checks(contract, timeout_s: float) -> dict:
    """validate's checks of the data path, in report order: ingest freshness per dimension
    (data), the outbox backlog and the consumer lag (events), the cache ratios (data)."""
    from ..data.checks import cache_check, freshness_checks
    from ..events.checks import event_checks
    return {**freshness_checks(contract, timeout_s), **event_checks(contract, timeout_s),
            "cache_ratios": lambda: cache_check(contract, timeout_s)}


def active_contract(contract, timeout_s: float):
    """The data checks judge the tier the deployment's clients write to: the one the
    active-tier record names, or the bootstrap store before a first cut-over."""
    if contract.bootstrap is None:
        return contract
    import sqlite3

    from ..errors import BackboneError
    from ..data.follow import contract_for
    from ..data.active_tier import RecordReader
    reader = RecordReader(contract.bootstrap.store, timeout_s)
    try:
        return contract_for(contract, reader.read())
    except (BackboneError, sqlite3.Error):  # a record this run cannot follow: the service checks say what is wrong
        return contract
    finally:
        reader.close()


def _not_configured(name: str, missing: list[str]):
    from ..checks import DOWN, CheckResult
    sections = ", ".join(missing)
    return lambda: CheckResult(name, DOWN, "not_configured",
                               f"The contract has no {sections} section, so {name} cannot be checked.")


def preflight(contract) -> None:
    """Bad declarations are bad input (exit 2) before anything is contacted: the same
    validation `topics plan|apply|check` runs."""
    if contract.kafka is not None:
        from ..topics.model import validate_declared
        validate_declared(contract.kafka.topics, contract.kafka.expected_brokers)


def cmd_checks(args) -> int:
    from ..checks import DEGRADED, run_concurrently
    from ..report import Redactor, Report, render

    contract = contract_from(args)
    preflight(contract)
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
    from ..report import Redactor
    contract = contract_from(args)
    manifest = contract.manifest()
    if args.format == "json":
        text = json.dumps(manifest, indent=2) + "\n"
    else:
        text = f"# Backbone manifest: {contract.environment}\n\n```json\n{json.dumps(manifest, indent=2)}\n```\n"
    emit(Redactor(contract.secrets()).scrub(text), args.output, "manifest")
    return 0
