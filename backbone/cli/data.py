"""`backbone ingest` and `backbone query`: the data path from the command line."""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from ..errors import BackboneError, ConfigError
from ..report import EXIT_BAD_INPUT, EXIT_READY, Redactor
from .common import contract_from, emit, err, report_args, require, sources_args

DIMENSIONS = ("bars", "trades", "macro")


def register(sub) -> None:
    text = "load market data (a file or generated rows) into the store: validated, idempotent, journaled"
    p = sub.add_parser("ingest", help=text, description=text)
    sources_args(p)
    p.add_argument("--dimension", required=True, choices=DIMENSIONS)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="PATH",
                        help="CSV or JSON lines, optionally gzip (columns in docs/data.md)")
    source.add_argument("--generate", type=_count, metavar="N", help="N deterministic synthetic rows")
    p.add_argument("--symbol", help="the symbol of a vendor daily-bar file (Date,Open,High,Low,Close,Adj Close,Volume)")
    p.add_argument("--symbols", type=_count, default=10, metavar="K", help="with --generate: K symbols (default 10)")
    p.add_argument("--seed", type=int, default=1, help="with --generate: the random seed (default 1)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="load the valid rows and report the bad ones (default: a bad row means nothing is written)")
    report_args(p)
    p.set_defaults(func=cmd_ingest)

    text = "read market data through the query cache, saying whether it was a hit"
    q = sub.add_parser("query", help=text, description=text)
    q.add_argument("what", choices=("bars", "trades", "macro", "candles", "latest"),
                   help="latest: the newest bar per symbol; candles: 1-minute OHLCV from trades")
    sources_args(q)
    q.add_argument("--symbols", required=True, metavar="A,B,...", help="symbols (macro: calendars)")
    q.add_argument("--start", type=_when, metavar="ISO", help="window start, inclusive (default: 1970)")
    q.add_argument("--end", type=_when, metavar="ISO", help="window end, exclusive (default: now)")
    q.add_argument("--limit", type=_count, default=10_000)
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--repeat", type=_count, default=1, metavar="N", help="run the query N times (shows the cache)")
    q.set_defaults(func=cmd_query)


def _count(raw: str) -> int:
    import argparse
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if not 1 <= value <= 1_000_000_000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000000000")
    return value


def _when(raw: str) -> dt.datetime:
    import argparse
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date or timestamp, got {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)  # a bare date means UTC


def _open(args):
    from ..data import open_backbone
    contract = contract_from(args)
    require(contract, args.command, "timescale")
    redactor = Redactor(contract.secrets())
    return open_backbone(contract, warn=lambda m: err.print(f"[yellow]warning:[/] {redactor.scrub(m)}")), redactor


def cmd_ingest(args) -> int:
    from ..data import IngestRejected
    if args.symbol and (args.generate or args.dimension != "bars"):
        raise ConfigError("--symbol names the symbol of a vendor daily-bar file (--dimension bars --file ...)")
    from ..data.files import FileFormatError, read_records
    if args.file is not None:
        if not args.file.is_file():
            raise ConfigError(f"--file {args.file}: file not found")
        records, numbered, source = (lambda: read_records(args.file, args.dimension, args.symbol)), True, str(args.file)
    else:
        from ..data.generate import generate
        records, numbered = (lambda: generate(args.dimension, args.generate, args.symbols, args.seed)), False
        source = f"generated: {args.generate} rows, {args.symbols} symbols, seed {args.seed}"
    bb, redactor = _open(args)
    try:
        with bb, _progress(args.generate) as progress:
            result = bb.ingest(args.dimension, records, source=source, skip_invalid=args.skip_invalid,
                               progress=progress, numbered=numbered)
    except IngestRejected as exc:
        _print_bad_rows(exc.result, redactor)
        err.print(f"backbone: error: {args.file or 'input'}: {exc.result.rejected} bad row(s) of "
                  f"{exc.result.received}; nothing written (--skip-invalid loads the valid rows)", markup=False)
        return EXIT_BAD_INPUT
    except FileFormatError as exc:
        raise ConfigError(str(exc)) from None
    except BackboneError:
        raise
    except Exception as exc:  # the store's driver: a failure of the operation, not of the input
        err.print(redactor.scrub(f"backbone: ingest failed: {_reason(exc)}"), markup=False)
        return 1
    if result.errors:
        _print_bad_rows(result, redactor)
    rate = result.received / result.seconds if result.seconds else 0
    data = {"run_id": result.run_id, "dimension": result.dimension, "source": source, "received": result.received,
            "inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
            "rejected": result.rejected, "events": result.events, "seconds": round(result.seconds, 3), "rows_per_s": round(rate),
            "freshness_s": None if result.freshness_s is None else round(result.freshness_s, 1)}
    text = (json.dumps(data, indent=2) + "\n" if args.format == "json" else
            f"# Ingest: {result.dimension}\n\n| received | inserted | updated | unchanged | rejected | seconds | rows/s |\n"
            f"|---|---|---|---|---|---|---|\n| {result.received} | {result.inserted} | {result.updated} | "
            f"{result.unchanged} | {result.rejected} | {result.seconds:.2f} | {rate:,.0f} |\n\n"
            f"Run `{result.run_id}` journaled, {result.events} event(s) written to the outbox; source: {source}.\n")
    emit(redactor.scrub(text), args.output, f"ingest {result.dimension}: {result.received} rows")
    return EXIT_READY


def _print_bad_rows(result, redactor) -> None:
    for error in result.errors:
        err.print(redactor.scrub(f"  line {error.position}: {error.reason}"), markup=False)
    if result.rejected > len(result.errors):
        err.print(f"  ... and {result.rejected - len(result.errors)} more bad row(s)", markup=False)


def _progress(total: int | None):
    """A progress bar with rows and rows/s on stderr when it is a terminal; else nothing."""
    from contextlib import contextmanager, nullcontext

    if not sys.stderr.isatty():
        return nullcontext(None)

    @contextmanager
    def bar():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        started = time.perf_counter()
        with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(), transient=True) as progress:
            task = progress.add_task("rows", total=total, rate="—")
            yield lambda done: progress.update(task, completed=done,
                                               rate=f"{done / max(1e-9, time.perf_counter() - started):,.0f}")
    return bar()


def cmd_query(args) -> int:
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        raise ConfigError("--symbols: give at least one symbol")
    start = args.start or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    end = args.end or dt.datetime.now(dt.timezone.utc)
    if end <= start:
        raise ConfigError("--end must be after --start")
    bb, redactor = _open(args)
    try:
        with bb:
            for _ in range(args.repeat):
                if args.what == "latest":
                    result = bb.latest_bars(symbols)
                elif args.what == "candles":
                    result = bb.candles(symbols, start, end, args.limit)
                else:
                    result = getattr(bb, args.what)(symbols, start, end, args.limit)
                err.print(f"cache: {'hit' if result.hit else 'miss'} ({result.source}), {len(result)} row(s) "
                          f"in {result.ms:.2f} ms")
    except BackboneError:
        raise
    except Exception as exc:
        err.print(redactor.scrub(f"backbone: query failed: {_reason(exc)}"), markup=False)
        return 1
    sys.stdout.write(_render(result.rows, args.format))
    return EXIT_READY


def _render(rows: list, fmt: str) -> str:
    from dataclasses import fields
    if not rows:
        return "[]\n" if fmt == "json" else ""
    names = [f.name for f in fields(rows[0])]
    table = [[v.isoformat() if isinstance(v, dt.datetime) else v for v in (getattr(r, n) for n in names)] for r in rows]
    if fmt == "json":
        return json.dumps([dict(zip(names, row)) for row in table], indent=1) + "\n"
    if fmt == "csv":
        import csv
        import io
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(table)
        return out.getvalue()
    widths = [max(len(str(x)) for x in [n] + [row[i] for row in table]) for i, n in enumerate(names)]
    line = lambda values: "  ".join(str(v).rjust(w) if isinstance(v, (int, float)) else str(v).ljust(w)  # noqa: E731
                                    for v, w in zip(values, widths)).rstrip() + "\n"
    return line(names) + "".join(line(row) for row in table)


def _reason(exc: BaseException) -> str:
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    if "no such table" in first or "does not exist" in first:
        return f"{first} (run `backbone migrate apply` first)"
    return first
