"""Benchmark (not a test): `backbone ingest --file` against the tool a user would use instead,
as whole processes on the same files, interleaved, in one run.

    .venv/bin/python bench/ingest_file.py [--outputs FILE] [--rows 1000000] [--big 5000000]
                                          [--rounds 3] [--big-rounds N] [--quick] [--work DIR]

Without --outputs it starts its own `backbone local up` (single node) in a temp dir and takes it
down at the end. It writes, into a temp dir, `--rows` bars and as many trades (rows from
`backbone.data.generate`, in the CSV layout `ingest --file` reads), each plain and gzip, and
`--big` bars plain. Every file then goes through, each run starting from an empty table:
- institutional: `backbone ingest --dimension D --file F --outputs OUTPUTS` (the contract's
  `daily_bars` / `intraday_trades`, truncated before each run) against
  `psql -c "\\copy T (cols) FROM 'F' csv header"` (gzip: `FROM PROGRAM 'zcat F'`) into a new
  table of the same shape (`LIKE <table> INCLUDING ALL`, then `create_hypertable` with the
  same chunk interval, dropped afterwards; no validation, no upsert);
- bootstrap: `backbone ingest` in a new working dir whose embedded store `migrate apply` made,
  against the `sqlite3` shell: `.import` into a temp table and `INSERT ... SELECT` into a new
  store with the migrated table's own DDL (WAL, synchronous=NORMAL, as the store). `.import`
  cannot read gzip: the gzip rows compare backbone on the .gz with sqlite3 on the plain file.
Each process's wall time (start-up included) and peak RSS (/usr/bin/time's %M: its largest
process, e.g. psql or its zcat; without /usr/bin/time, the polled VmHWM of the process alone)
are recorded; the order of the four tools rotates every step. Each file's row count in the
target table is checked after every run.
Prints the median rows/s, the ratios backbone/psql and backbone/sqlite3, peak RSS, and
PASS/FAIL against the floors: institutional >= 0.7x psql \\copy, bootstrap >= 0.5x sqlite3
.import, backbone's peak RSS at --big bars within +-10% of --rows bars. The commit of the code
under test is printed (`git rev-parse --short HEAD`) at the start and with every backbone run.
To measure a fixed tree while the working tree changes, export it and point PYTHONPATH at it
(the CLI children inherit it): `git archive HEAD backbone | tar -x -C /tmp/base && git
rev-parse --short HEAD > /tmp/base/COMMIT; PYTHONPATH=/tmp/base .venv/bin/python bench/...`.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict

import backbone
from backbone.contract import Sources, load_contract
from backbone.data.generate import generate
from backbone.data.rows import dimension

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import backbone_cmd, local_environment  # noqa: E402
from backbone.clients.timescale import libpq_url

REPO = Path(__file__).resolve().parent.parent
TIME = os.access("/usr/bin/time", os.X_OK)
UTC = dt.timezone.utc
TOOLS = ("backbone institutional", "psql \\copy", "backbone bootstrap", "sqlite3 .import")
FLOORS = {"backbone institutional": ("psql \\copy", 0.7), "backbone bootstrap": ("sqlite3 .import", 0.5)}
# bars: 1,000 symbols from 2000 (5M bars end in 2019); trades: 100 symbols from 6 days ago,
# inside the hypertable's 90-day retention and its 7-day compression
BARS = {"symbols": 1000, "start": dt.datetime(2000, 1, 3, tzinfo=UTC)}


def trades_start() -> dt.datetime:
    today = dt.datetime.now(UTC).date() - dt.timedelta(days=6)
    return dt.datetime(today.year, today.month, today.day, tzinfo=UTC)


def commit() -> str:
    """The code under test: the repository's HEAD (+dirty if backbone/ has uncommitted changes),
    or, when PYTHONPATH points at another tree, that tree's COMMIT file or its path."""
    where = Path(backbone.__file__).resolve().parent.parent
    if where != REPO:
        return (where / "COMMIT").read_text().strip() if (where / "COMMIT").exists() else str(where)
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "backbone"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def columns(dim: str) -> list[str]:
    return list(dimension(dim).columns)


def write_file(dim: str, n: int, path: Path) -> None:
    """n generated rows as CSV with a header, the layout `ingest --file` reads."""
    cols = columns(dim)
    rows = generate(dim, n, BARS["symbols"], 1, BARS["start"]) if dim == "bars" else \
        generate(dim, n, 100, 1, trades_start())
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(cols)
        writer.writerows(tuple(v.isoformat() if isinstance(v, dt.datetime) else v
                               for v in (getattr(r, c) for c in cols)) for r in rows)


def gzipped(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    with target.open("wb") as out:
        subprocess.run(["gzip", "-c", "-6", str(path)], stdout=out, check=True)
    return target


def run(cmd: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one whole process; exits with its output if it failed.

    The peak RSS comes from /usr/bin/time (%M: the largest of the process and its children),
    not from this process's wait4: a child forked from here starts with this process's pages,
    and ru_maxrss keeps that high-water mark through exec. Without it, /proc VmHWM is polled."""
    rss_file = log.with_suffix(".rss")
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if TIME else []
    hwm = 0
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(timer + cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        while not TIME and proc.poll() is None:
            hwm = max(hwm, _vm_hwm_kib(proc.pid))
            time.sleep(0.02)
        proc.wait()
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)[:300]} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return elapsed, (int(rss_file.read_text().split()[-1]) if TIME else hwm) / 1024


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Bench:
    def __init__(self, outputs: Path, work: Path):
        self.outputs, self.work = outputs, work
        self.dsn = libpq_url(load_contract(Sources(outputs=outputs, environ={})).timescale, "owner")  # it makes scratch tables
        info = conninfo_to_dict(self.dsn)
        keys = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
                "dbname": "PGDATABASE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT"}
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKBONE_", "PG"))}
        self.env = clean
        self.pg_env = clean | {keys[k]: str(v) for k, v in info.items() if k in keys}
        self.serial = 0
        self.ddl = self._sqlite_ddl()

    def _sqlite_ddl(self) -> dict[str, str]:
        """The bootstrap store's own DDL of each table, from a store `migrate apply` made."""
        probe = self.fresh_store()
        with sqlite3.connect(probe / ".backbone" / "bootstrap" / "backbone.db") as conn:
            ddl = {dimension(d).table: conn.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                                    (dimension(d).table,)).fetchone()[0] for d in ("bars", "trades")}
        shutil.rmtree(probe)
        return ddl

    def fresh_store(self) -> Path:
        self.serial += 1
        cwd = self.work / f"boot{self.serial}"
        cwd.mkdir()
        run(backbone_cmd() + ["migrate", "apply"], self.work / "migrate.log", cwd=cwd, env=self.env)
        return cwd

    def count(self, table: str) -> int:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def measure(self, tool: str, dim: str, path: Path, n: int) -> tuple[float, float]:
        table, cols = dimension(dim).table, columns(dim)
        log = self.work / "run.log"
        if tool == "backbone institutional":
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"TRUNCATE {table}")
            result = run(backbone_cmd() + ["ingest", "--dimension", dim, "--file", str(path),
                                           "--outputs", str(self.outputs)], log, env=self.env)
            got = self.count(table)
        elif tool == "psql \\copy":
            name = f"bench_copy_{table}"
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                interval = conn.execute("SELECT time_interval FROM timescaledb_information.dimensions "
                                        "WHERE hypertable_name = %s AND column_name = 'ts'", (table,)).fetchone()[0]
                conn.execute(f"DROP TABLE IF EXISTS {name}")
                conn.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING ALL)")
                conn.execute("SELECT create_hypertable(%s::regclass, 'ts', chunk_time_interval => %s, "
                             "create_default_indexes => false)", (name, interval))
            source = f"PROGRAM 'zcat {path}'" if path.suffix == ".gz" else f"'{path}'"
            result = run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                          f"\\copy {name} ({', '.join(cols)}) FROM {source} csv header"], log, env=self.pg_env)
            got = self.count(name)
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"DROP TABLE {name}")
        elif tool == "backbone bootstrap":
            cwd = self.fresh_store()
            result = run(backbone_cmd() + ["ingest", "--dimension", dim, "--file", str(path)], log,
                         cwd=cwd, env=self.env)
            with sqlite3.connect(cwd / ".backbone" / "bootstrap" / "backbone.db") as conn:
                got = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            shutil.rmtree(cwd)
        else:
            plain = path.with_suffix("") if path.suffix == ".gz" else path  # .import reads plain files only
            db = self.work / "sqlite3.db"
            for stale in self.work.glob("sqlite3.db*"):
                stale.unlink()
            script = "\n".join([
                "PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;", self.ddl[table] + ";",
                f"CREATE TEMP TABLE import ({', '.join(cols)});",
                f".import --csv --skip 1 --schema temp {plain} import",
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM temp.import;", ""])
            (self.work / "import.sql").write_text(script)
            result = run(["sqlite3", "-bail", str(db), f".read {self.work / 'import.sql'}"], log, env=self.env)
            with sqlite3.connect(db) as conn:
                got = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if got != n:
            raise SystemExit(f"{tool} on {path.name}: {got:,} rows in the table, expected {n:,}")
        return result


def missing_tools() -> list[str]:
    return [f"{tool} (not on PATH{'; apt-get install -y sqlite3' if tool == 'sqlite3' else ''})"
            for tool in ("psql", "sqlite3", "gzip", "zcat") if shutil.which(tool) is None]


def bench(args: argparse.Namespace, outputs: Path, work: Path) -> int:
    head = commit()
    print(f"code under test: {head}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start",
          flush=True)
    b = Bench(outputs, work)
    cases: list[tuple[str, str, int, Path]] = []  # (dimension, format, rows, file)
    for dim in ("bars", "trades"):
        started = time.perf_counter()
        plain = work / f"{dim}_{args.rows}.csv"
        write_file(dim, args.rows, plain)
        cases += [(dim, "plain", args.rows, plain), (dim, "gzip", args.rows, gzipped(plain))]
        print(f"wrote {plain.name} ({plain.stat().st_size / 2 ** 20:.0f} MiB) and .gz in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    big = None
    if args.big:
        big = work / f"bars_{args.big}.csv"
        write_file("bars", args.big, big)
        print(f"wrote {big.name} ({big.stat().st_size / 2 ** 20:.0f} MiB)", file=sys.stderr, flush=True)
    for dim in ("bars", "trades"):  # warm-up: page cache, imports, the tools' first runs
        warm = work / f"warm_{dim}.csv"
        write_file(dim, 10_000, warm)
        for tool in TOOLS:
            b.measure(tool, dim, warm, 10_000)
    results: dict[tuple[str, str, int, str], list[tuple[float, float]]] = {}
    plan = []  # each round's files, then (while --big-rounds lasts) the big file
    for r in range(max(args.rounds, args.big_rounds if big else 0)):
        plan += [(r, c) for c in cases] if r < args.rounds else []
        plan += [(r, ("bars", "plain", args.big, big))] if big and r < args.big_rounds else []
    for step, (r, (dim, fmt, n, path)) in enumerate(plan):
        order = TOOLS[step % 4:] + TOOLS[:step % 4]
        for tool in order:
            seconds, rss = b.measure(tool, dim, path, n)
            results.setdefault((dim, fmt, n, tool), []).append((seconds, rss))
            note = f" at {commit()}" if tool.startswith("backbone") else ""
            print(f"round {r + 1} {dim:6s} {fmt:5s} {n:>9,} {tool:24s} {seconds:7.2f} s "
                  f"{n / seconds:>10,.0f} rows/s  {rss:6.0f} MiB{note}", file=sys.stderr, flush=True)
    return report(results, args, head)


def report(results: dict, args: argparse.Namespace, head: str) -> int:
    med = {k: (statistics.median(s for s, _ in v), max(m for _, m in v), len(v)) for k, v in results.items()}
    print(f"\nmedians (runs per row in brackets); rows/s include process start-up; peak RSS is the largest "
          f"process of each run, the highest over the runs; started at {head}, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'file':<22}{'tool':<24}{'rows/s':>11}{'peak RSS':>10}{'ratio':>9}  floor")
    failures = 0
    def order(key: tuple) -> tuple:
        dim, fmt, n, tool = key
        return n, dim, fmt, TOOLS.index(tool)
    for (dim, fmt, n, tool), (seconds, rss, runs) in sorted(med.items(), key=lambda kv: order(kv[0])):
        ratio, verdict = "", ""
        if tool in FLOORS:
            peer, floor = FLOORS[tool]
            plain_peer = peer.startswith("sqlite3")  # .import reads the plain file only
            peer_s = med[(dim, "plain" if plain_peer else fmt, n, peer)][0]
            ratio = f"{peer_s / seconds:.2f}x"
            ok = peer_s / seconds >= floor
            failures += not ok
            on = ", on the plain file" if plain_peer and fmt == "gzip" else ""
            verdict = f"{'PASS' if ok else 'FAIL'} (>= {floor}x {peer}{on})"
        label = f"{dim} {fmt} {n / 1e6:g}M"
        print(f"{label:<22}{tool + f' [{runs}]':<24}{n / seconds:>11,.0f}{rss:>7.0f} MiB{ratio:>9}  {verdict}")
    if args.big:
        print(f"\npeak RSS, bars plain, {args.rows / 1e6:g}M -> {args.big / 1e6:g}M rows (goal: within +-10%)")
        for tool in TOOLS:
            small, large = med[("bars", "plain", args.rows, tool)][1], med[("bars", "plain", args.big, tool)][1]
            change = large / small - 1
            verdict = ("PASS" if abs(change) <= 0.10 else "FAIL") if tool.startswith("backbone") else "(reference)"
            failures += tool.startswith("backbone") and abs(change) > 0.10
            print(f"{tool:<24}{small:7.0f} MiB -> {large:7.0f} MiB  {change:+6.1%}  {verdict}")
    print(f"\n{'all floors met' if not failures else f'{failures} floor(s) not met'}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, help="an existing environment's outputs.json (default: start a "
                        "local one in a temp dir, stopped afterwards); its bars and trades are truncated")
    parser.add_argument("--rows", type=int, default=1_000_000, help="bars, and as many trades (default 1M)")
    parser.add_argument("--big", type=int, default=5_000_000, help="bars for the peak-RSS comparison (0: skip)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-rounds", type=int, help="rounds at --big rows (default: --rounds)")
    parser.add_argument("--quick", action="store_true", help="100k rows, 500k big, a few minutes")
    parser.add_argument("--work", type=Path, help="where the files go (default: a temp dir, removed)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big = 100_000, 500_000
    args.big_rounds = args.rounds if args.big_rounds is None else args.big_rounds
    missing = missing_tools()
    if missing:
        raise SystemExit("cannot compare against the raw tools; missing: " + ", ".join(missing))
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=args.work) as tmp, \
            local_environment(args.outputs) as outputs:
        code = bench(args, outputs, Path(tmp))
    sys.exit(code)


if __name__ == "__main__":
    main()
