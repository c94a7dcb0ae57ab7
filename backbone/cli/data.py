"""`backbone ingest` and `backbone query`: the data path from the command line."""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from ..errors import BackboneError, ConfigError
from ..report import EXIT_READY, Redactor
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
    p.add_argument("--symbols", type=_count, metavar="K", help="with --generate: K symbols (default 10)")
    p.add_argument("--seed", type=int, help="with --generate: the random seed (default 1)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="load the valid rows and report the bad ones (default: a bad row means nothing is written)")
    report_args(p)
    p.set_defaults(func=cmd_ingest)

    text = "read market data through the query cache, saying whether it was a hit"
    q = sub.add_parser("query", help=text, description=text)
    q.add_argument("kind", metavar="KIND", choices=("bars", "trades", "macro", "candles", "latest"),
                   help="bars, trades, macro, candles (1-minute OHLCV from trades) or latest (the newest bar per "
                        "symbol)")
    sources_args(q)
    q.add_argument("--symbols", required=True, metavar="A,B,...",
                   help="symbols, any case (macro: calendars, matched exactly: the generated one is `us`)")
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
    from ..data.files import FileFormatError
    if args.symbol and (args.generate or args.dimension != "bars"):
        raise ConfigError("--symbol names the symbol of a vendor daily-bar file (--dimension bars --file ...)")
    if args.file is not None:
        given = [option for option, value in (("--symbols", args.symbols), ("--seed", args.seed)) if value is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} apply to --generate only; a file's rows name their own symbols")
        if not args.file.is_file():
            raise ConfigError(f"--file {args.file}: file not found")
        if args.symbol:
            _vendor_only(args.file, args.symbol)
        from ..data.columnar import FileBatches  # validated columns in bounded batches, no object per row
        records, numbered, source = (lambda: FileBatches(args.file, args.dimension, args.symbol)), True, str(args.file)
    else:
        from ..data.columnar import GeneratedBatches  # the same columnar store path as a file
        symbols, seed = args.symbols or 10, 1 if args.seed is None else args.seed
        records, numbered = (lambda: GeneratedBatches(args.dimension, args.generate, symbols, seed)), False
        source = f"generated: {args.generate} rows, {symbols} symbols, seed {seed}"
    bb, redactor = _open(args)
    try:
        with _signals_interrupt(), bb, _progress(args.generate) as progress:
            result = bb.ingest(args.dimension, records, source=source, skip_invalid=args.skip_invalid,
                               progress=progress, numbered=numbered)
    except IngestRejected as exc:  # every bad row listed, then the one line cli.main prints (exit 2)
        _print_bad_rows(exc.result, redactor)
        raise ConfigError(f"{args.file or 'input'}: {exc.result.rejected} bad row(s) of {exc.result.received}; "
                          "nothing written (--skip-invalid loads the valid rows)") from None
    except FileFormatError as exc:  # journaled as rejected; the message names the file and the reason
        raise ConfigError(f"{exc}; nothing written") from None
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BackboneError:
        raise
    except Exception as exc:  # the store's driver: a failure of the operation, not of the input
        err.print(redactor.scrub(f"backbone: ingest failed: {_reason(exc)}"), markup=False)
        return 1
    if result.errors:
        _print_bad_rows(result, redactor)
    # Generated rows cost nothing to read but their making: the rate is the store's. A file's
    # rate is end to end (reading and parsing are part of loading a file).
    generated = args.generate is not None
    rate = (result.received / result.store_seconds if result.store_seconds else 0) if generated else \
        (result.received / result.seconds if result.seconds else 0)
    data = {"run_id": result.run_id, "dimension": result.dimension, "source": source, "received": result.received,
            "inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
            "rejected": result.rejected, "events": result.events, "seconds": round(result.seconds, 3),
            "store_seconds": round(result.store_seconds, 3), "rows_per_s": round(rate),
            "rate_of": "store" if generated else "ingest",
            "freshness_s": None if result.freshness_s is None else round(result.freshness_s, 1)}
    label = "store rows/s" if generated else "rows/s"
    text = (json.dumps(data, indent=2) + "\n" if args.format == "json" else
            f"# Ingest: {result.dimension}\n\n| received | inserted | updated | unchanged | rejected | seconds | {label} |\n"
            f"|---|---|---|---|---|---|---|\n| {result.received} | {result.inserted} | {result.updated} | "
            f"{result.unchanged} | {result.rejected} | {result.seconds:.2f} | {rate:,.0f} |\n\n"
            f"Run `{result.run_id}` journaled, {result.events} event(s) written to the outbox; source: {source}.\n")
    emit(redactor.scrub(text), args.output, f"ingest {result.dimension}: {result.received} rows")
    return EXIT_READY


def _vendor_only(path: Path, symbol: str) -> None:
    """--symbol fills the symbol a vendor daily-bar file lacks; on any other file it would be
    ignored (or fill only some rows), so it is refused."""
    from ..data.files import FileFormatError, layout_of
    try:
        layout = layout_of(path, "bars")
    except FileFormatError:
        return  # unreadable: the ingest refuses the file itself, and journals it
    if layout != "vendor":
        what = "JSON lines" if layout == "jsonl" else "a CSV file with a symbol column (or without Date)"
        raise ConfigError(f"--symbol {symbol}: {path} is {what}, not a vendor daily-bar file "
                          "(Date,Open,High,Low,Close,Adj Close,Volume); its rows name their own symbols, drop --symbol")


def _signals_interrupt():
    """While the ingest runs, SIGTERM stops it like Ctrl-C (its transaction rolls back and the
    run is journaled as interrupted) instead of killing the process mid-write."""
    import signal
    from contextlib import contextmanager

    from ..errors import Interrupted

    def stop(signum, _frame):
        raise Interrupted(signum, signal.Signals(signum).name)

    @contextmanager
    def installed():
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    return installed()


def _interrupted(exc: KeyboardInterrupt) -> int:
    import signal

    from ..errors import Interrupted
    name, code = (exc.name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 128 + signal.SIGINT)
    result = getattr(exc, "result", None)
    if result is not None and result.status == "interrupted":
        err.print(f"backbone: ingest stopped by {name} after reading {result.received} row(s): rolled back, nothing "
                  f"written; run {result.run_id} journaled as interrupted", markup=False)
    else:  # the signal waited for a commit and its journal entry: the run is complete
        err.print(f"backbone: stopped by {name} after the ingest committed (journaled as ok)", markup=False)
    return code


def _print_bad_rows(result, redactor) -> None:
    for error in result.errors:
        err.print(redactor.scrub(f"  line {error.position}: {error.reason}"), markup=False)
    if result.rejected > len(result.errors):
        err.print(f"  ... and {result.rejected - len(result.errors)} more bad row(s)", markup=False)


def _progress(total: int | None):
    """A progress bar with rows and rows/s on stderr when it is a terminal."""
    from contextlib import contextmanager

    if not sys.stderr.isatty():  # a log: plain lines, at most every few seconds
        from ..progress import plain
        return plain("ingest", total)

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
    if args.kind != "macro":
        symbols = [s.upper() for s in symbols]  # a stored symbol is upper case (rows.SYMBOL): any case matches
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
                if args.kind == "latest":
                    result = bb.latest_bars(symbols)
                elif args.kind == "candles":
                    result = bb.candles(symbols, start, end, args.limit)
                else:
                    result = getattr(bb, args.kind)(symbols, start, end, args.limit)
                err.print(f"cache: {'hit' if result.hit else 'miss'} ({result.source}), {len(result)} row(s) "
                          f"in {result.ms:.2f} ms")
    except BackboneError:
        raise
    except Exception as exc:
        err.print(redactor.scrub(f"backbone: query failed: {_reason(exc)}"), markup=False)
        return 1
    if not result.rows and args.kind == "macro" and any(c != c.lower() for c in symbols):
        err.print(f"hint: no rows for calendar(s) {', '.join(symbols)}: calendars match exactly, case included, and "
                  f"are usually lower case (the generated one is `us`): try --symbols {args.symbols.lower()}",
                  markup=False)
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
