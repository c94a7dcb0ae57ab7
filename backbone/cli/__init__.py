"""`backbone` command line: a thin layer over the concepts.

Each command group is a module here with a `register(subparsers)` function; `GROUPS` is the
one place they are listed. Registering imports nothing heavy: a command imports its
concept (and the drivers behind it) only when it runs.

Exit codes: 0 ready (degraded is 0 with a warning unless --strict), 1 a check failed,
2 bad input or configuration.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import checks, data, drill, events, local, migrate, serve, tier, topics

GROUPS = (checks, data, events, serve, tier, topics, migrate, drill, local)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbone", description="Prove a data backbone deployment works.")
    parser.add_argument("--version", action="version", version=f"backbone {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import BackboneError
    from .common import err, forget_secrets, scrub

    args = build_parser().parse_args(argv)
    forget_secrets()  # a previous call's contract (tests call main in one process) is not this one's
    try:
        return args.func(args)
    except BackboneError as exc:  # printed here once, for every command; the contracts' secrets masked
        prefix = "backbone: error: " if exc.exit_code == 2 else "backbone: "
        context = f"{exc.context}: " if exc.context and exc.exit_code != 2 else ""
        err.print(scrub(f"{prefix}{context}{exc}"), markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("backbone: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
