"""Pieces every command group shares: configuration-source options, report options, the
stderr console and report output. Light on purpose: the contract model and rich load on
first use, so `backbone --version` and argument errors never pay for them."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..contract import Contract


class _LazyConsole:
    """rich's stderr console, created on the first print."""

    _console = None

    def print(self, *objects, **kwargs) -> None:
        if self._console is None:
            from rich.console import Console
            type(self)._console = Console(stderr=True, highlight=False, soft_wrap=True)
        self._console.print(*objects, **kwargs)


err = _LazyConsole()


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
    """A duration in seconds: finite, above 0, at most a day."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds greater than 0, got {raw!r}")
    if value > 86400:
        raise argparse.ArgumentTypeError("must be at most 86400 s (a day)")
    return value


def contract_from(args) -> Contract:
    from ..contract import Sources, load_contract
    return remember(load_contract(Sources(outputs=args.outputs, stack=args.stack, env_file=args.env_file,
                                          extras=tuple(args.extra))))


_SECRETS: list[str] = []  # of every contract this command loaded: `main` masks them in an error's message


def remember(contract: Contract) -> Contract:
    """Note the contract's secrets, so an error that reaches `main` is printed without them."""
    _SECRETS.extend(contract.secrets())
    return contract


def forget_secrets() -> None:
    _SECRETS.clear()


def scrub(text: str) -> str:
    from ..report.redact import Redactor
    return Redactor(_SECRETS).scrub(text)


def require(contract: Contract, command: str, *sections: str) -> None:
    """Each command needs only the sections it uses; say which one is missing (exit 2)."""
    missing = contract.missing(*sections)
    if missing:
        raise ConfigError(f"{command} needs the {', '.join(missing)} section(s) of the contract, "
                          f"which this {contract.tier} environment does not have")


def folder(path: Path, option: str, create: bool = True, own: bool = False) -> Path:
    """`path` as a folder to write into: an existing one, or one created under the working
    directory. A mistyped absolute path must not leave folders anywhere else (exit 2).
    `own`: the option names the report's own folder (`--drill-report DIR`), which is made
    wherever its parent exists, as `mkdir` would. `create=False` only checks, so a long
    command can refuse before it starts."""
    if path.is_dir():
        return path
    if path.exists():
        raise ConfigError(f"{option}: {path} is not a folder")
    if not (path.resolve().is_relative_to(Path.cwd().resolve()) or (own and path.resolve().parent.is_dir())):
        where = f"its parent {path.parent} does not exist" if own else "only a folder under the working " \
            "directory is created"
        raise ConfigError(f"{option}: the folder {path} does not exist; create it first ({where})")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{option}: cannot create the folder {path} ({exc.strerror})") from None
    return path


def emit(text: str, output: Path | None, summary: str) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    folder(output.parent, f"--output {output}")
    try:
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(text)
        tmp.replace(output)  # atomic: never a half-written report
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write ({exc.strerror})") from None
    err.print(f"{summary}; report written to {output}")
