"""Pieces every subcommand shares: configuration-source options, report options, output."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from .contract import Contract
from .sources import ConfigError, Sources, load_contract

err = Console(stderr=True, highlight=False, soft_wrap=True)


def sources_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration sources (later ones override earlier ones)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--outputs", type=Path, metavar="FILE",
                     help="outputs contract: `pulumi stack output --json --show-secrets` or `local up`'s outputs.json")
    src.add_argument("--stack", metavar="NAME", help="read the outputs of this Pulumi stack (needs the pulumi CLI)")
    g.add_argument("--env-file", type=Path, metavar="FILE", help="dotenv file, read without exporting")
    g.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE", help="override one setting")


def report_args(p: argparse.ArgumentParser, formats=("markdown", "json")) -> None:
    p.add_argument("--format", choices=formats, default="markdown")
    p.add_argument("--output", type=Path, metavar="PATH", help="write the report here instead of stdout")


def positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def contract_from(args) -> Contract:
    return load_contract(Sources(outputs=args.outputs, stack=args.stack, env_file=args.env_file,
                                 extras=tuple(args.extra)))


def emit(text: str, output: Path | None, summary: str) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(text)
        tmp.replace(output)  # atomic: never a half-written report
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write ({exc.strerror})") from None
    err.print(f"{summary}; report written to {output}")
