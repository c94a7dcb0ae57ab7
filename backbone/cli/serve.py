"""`backbone serve`: the relay, the bridge, scheduled ingest and cache maintenance under one
supervisor, until SIGTERM / Ctrl-C (docs/serve.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import BackboneError
from .common import contract_from, err, folder, positive, require, sources_args


def register(sub) -> None:
    text = ("run the relay, the bridge, scheduled ingest jobs and cache maintenance under one supervisor, "
            "with Prometheus metrics, until SIGTERM or Ctrl-C")
    p = sub.add_parser("serve", help=text, description=text)
    sources_args(p)
    p.add_argument("--schedule", type=Path, required=True, metavar="FILE",
                   help="TOML file of ingest jobs ([[job]] tables; see docs/serve.md)")
    p.add_argument("--metrics-port", type=_port, metavar="N",
                   help="serve /metrics (Prometheus) and /supervision (JSON) on this port (0: any free port)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address the metrics endpoint listens on (default 127.0.0.1)")
    p.add_argument("--snapshot", type=Path, metavar="FILE",
                   help="write the supervision snapshot here at shutdown and on SIGUSR1 (default: stdout)")
    p.add_argument("--run-for", type=positive, metavar="S", help="stop by itself after S seconds, as on SIGTERM")
    p.add_argument("--shutdown-timeout", type=positive, default=10.0, metavar="S",
                   help="bound on the shutdown: every task stops within S seconds (default 10)")
    p.add_argument("--cache-interval", type=positive, metavar="S",
                   help="cache maintenance period (default: the schedule's cache_interval_s, else 15)")
    p.set_defaults(func=cmd_serve)


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 0 to 65535 (0: any free port)")
    return value


def cmd_serve(args) -> int:
    from ..report import Redactor
    from ..serve.schedule import load_schedule
    from ..serve.service import ServeOptions, serve
    schedule = load_schedule(args.schedule)
    contract = contract_from(args)
    if contract.tier == "institutional":
        require(contract, "serve", "timescale", "kafka")
    if args.snapshot is not None:
        folder(args.snapshot.parent, f"--snapshot {args.snapshot}")
    redactor = Redactor(contract.secrets())

    def log(line: str) -> None:
        err.print(redactor.scrub(f"serve: {line}"), markup=False)

    options = ServeOptions(schedule, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                           snapshot_path=args.snapshot, run_for_s=args.run_for,
                           shutdown_timeout_s=args.shutdown_timeout, cache_interval_s=args.cache_interval)
    try:
        code, _ = serve(contract, options, log)
    except BackboneError:
        raise
    except Exception as exc:
        err.print(redactor.scrub(f"backbone: serve failed: {type(exc).__name__}: {exc}"), markup=False)
        return 1
    return code
