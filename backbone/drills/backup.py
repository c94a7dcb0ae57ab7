"""The Timescale backup / restore drill: prove that a dump restores, how long the restore
takes (against the RTO) and how old the dump is (against the RPO).

Take a `pg_dump -Fc` of the contract's database (or use a given one), restore it into a
scratch database `backbone_restore_<random>` on the same server, compare row counts table by
table, and drop the scratch database whatever happens. The password reaches pg_dump and
pg_restore through PGPASSWORD in the child's environment only: a command line is visible
to every user of the machine (ps), and the connection string we pass carries no password.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..clients import timescale as timescale_client
from ..contract import Contract
from ..errors import BackboneError
from ..local.binaries import SETUP_HINT, find_binaries
from ..report import Redactor
from ..serviceconfig import RESTORE_TEMPLATE
from ..migrate.schema import metadata
from .live import mark, rounded

# TimescaleDB's catalogue and chunk schemas: their contents follow from the hypertables,
# whose counts (through the parent table) already cover the chunks.
_INTERNAL_SCHEMAS = ("pg_catalog", "information_schema", "_timescaledb_catalog", "_timescaledb_internal",
                     "_timescaledb_config", "_timescaledb_cache", "_timescaledb_functions", "timescaledb_information",
                     "timescaledb_experimental", "toolkit_experimental")
_TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")
_TOC_EXTENSION = re.compile(r"^\d+; \d+ \d+ EXTENSION - (\S+)")


class BackupDrillError(BackboneError, RuntimeError):
    """The drill could not run; the message is for the operator and carries no secret (exit 1)."""

    context = "backup drill failed"


class RestoreVerdict:
    """What every backup / restore drill is judged by: `restore_s` against the service's RTO,
    the backup's `age_s` against its RPO, and the drill's own `ok` (what it verified)."""

    @property
    def rto_met(self) -> bool:
        return self.restore_s <= self.objectives["rto_s"]

    @property
    def rpo_met(self) -> bool:
        return self.age_s <= self.objectives["rpo_s"]

    @property
    def passed(self) -> bool:
        return self.ok and self.rto_met and self.rpo_met

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


@dataclass
class BackupDrill(RestoreVerdict):
    dump_path: Path
    dump_age_s: float
    restore_s: float
    tables: dict[str, tuple[int, int | None]]  # name -> (source rows, restored rows; None: not restored)
    objectives: dict[str, float]
    dump_taken: bool = False          # True when the drill took the dump itself
    dump_s: float | None = None       # how long taking it took
    scratch_database: str = ""
    notes: list[str] = field(default_factory=list)
    timescaledb: str | None = None    # the source's extension version; None: plain PostgreSQL
    hypertables: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # name -> (chunks, restored)

    @property
    def ok(self) -> bool:
        return bool(self.tables) and all(src == restored for src, restored in self.tables.values()) \
            and all(src == restored for src, restored in self.hypertables.values())

    @property
    def age_s(self) -> float:
        return self.dump_age_s

    def to_dict(self) -> dict[str, Any]:
        return {"dump_path": str(self.dump_path), "dump_taken": self.dump_taken, "dump_s": rounded(self.dump_s),
                "dump_age_s": rounded(self.dump_age_s), "restore_s": rounded(self.restore_s),
                "scratch_database": self.scratch_database,
                "tables": {n: {"source_rows": s, "restored_rows": r, "match": s == r}
                           for n, (s, r) in self.tables.items()},
                "timescaledb": self.timescaledb,
                "hypertables": {n: {"source_chunks": s, "restored_chunks": r, "match": s == r}
                                for n, (s, r) in self.hypertables.items()},
                "objectives": self.objectives, "ok": self.ok, "rto_met": self.rto_met, "rpo_met": self.rpo_met,
                "passed": self.passed, "notes": self.notes}

    def to_markdown(self) -> str:
        verdict = "✅ restore verified, objectives met" if self.passed else "❌ restore drill failed"
        how = f"taken by the drill in {self.dump_s:.2f} s" if self.dump_taken and self.dump_s is not None else "given"
        lines = ["# Backup / restore drill: timescale", "", f"**{verdict}**", "",
                 f"Dump: `{self.dump_path}` ({how}); restored into the scratch database "
                 f"`{self.scratch_database}`, dropped afterwards.", "",
                 "| measure | value | objective | met |", "|---|---|---|---|",
                 f"| RTO: restore time | {self.restore_s:.2f} s | ≤ {self.objectives['rto_s']:g} s | "
                 f"{mark(self.rto_met)} |",
                 f"| RPO: dump age | {self.dump_age_s:.1f} s | ≤ {self.objectives['rpo_s']:g} s | "
                 f"{mark(self.rpo_met)} |",
                 "", "| table | source rows | restored rows | match |", "|---|---|---|---|"]
        for name, (src, restored) in self.tables.items():
            lines.append(f"| {name} | {src} | {'missing' if restored is None else restored} | "
                         f"{mark(src == restored)} |")
        if self.hypertables:
            lines += ["", f"TimescaleDB {self.timescaledb}: restored in TimescaleDB's restoring mode "
                      "(`timescaledb_pre_restore()` / `timescaledb_post_restore()`; for a restore account that is "
                      "no superuser, `timescaledb.restoring` set on the scratch database).", "",
                      "| hypertable | source chunks | restored chunks | match |", "|---|---|---|---|"]
            for name, (src, restored) in self.hypertables.items():
                lines.append(f"| {name} | {src} | {'missing' if restored is None else restored} | "
                             f"{mark(src == restored)} |")
        if self.notes:
            lines += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"


def run(contract: Contract, options) -> BackupDrill:
    """The registry's signature (drills/backups.py)."""
    return backup_restore_drill(contract, options.work_dir, dump=options.given, timeout_s=options.timeout_s)


def backup_restore_drill(contract: Contract, work_dir: Path, dump: Path | None = None,
                         timeout_s: float = 600.0) -> BackupDrill:
    if contract.timescale is None:
        raise BackupDrillError("the backup drill needs a timescale section in the contract (institutional tier)")
    redactor = Redactor(contract.secrets())
    # the dump and the source's counts as the contract's user; the scratch database (created,
    # restored into, compared, dropped) as the `restore` duty, which may create databases
    conn_params, password = _connection(contract)
    restore_params, restore_password = _connection(contract, "restore")
    tools = _tools()
    env = _child_env(password)
    objectives = contract.objectives.timescale.model_dump()
    scratch = "backbone_restore_" + secrets.token_hex(4)
    try:
        with _connect(conn_params, password, timeout_s) as conn:
            source_tables = _user_tables(conn)
            timescale_version = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            source_chunks = _chunks(conn) if timescale_version else {}

        dump_taken, dump_s = dump is None, None
        if dump is None:
            work_dir = Path(work_dir)
            work_dir.mkdir(parents=True, exist_ok=True)
            dump = work_dir / f"{conn_params['dbname']}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}.dump"
            started = time.monotonic()
            _run([tools["pg_dump"], "-Fc", "--no-password", f"--file={dump}", f"--dbname={make_conninfo(**conn_params)}"],
                 env, timeout_s, "pg_dump")
            dump_s = time.monotonic() - started
            os.chmod(dump, 0o600)  # the dump is the data: readable by its owner only
        dump = Path(dump)
        if not dump.is_file():
            raise BackupDrillError(f"no dump file at {dump}")
        dump_age_s = max(0.0, time.time() - dump.stat().st_mtime)
        in_dump = _dump_tables(tools["pg_restore"], dump, env, timeout_s)

        notes: list[str] = []
        started = time.monotonic()
        try:
            with _connect(restore_params, restore_password, timeout_s) as conn:
                superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
                # a server may offer a template whose TimescaleDB internals the restore account
                # may write (serviceconfig.RESTORE_TEMPLATE): without it, only a superuser can
                # restore a TimescaleDB dump
                template = conn.execute("SELECT datname FROM pg_database WHERE datname = %s AND datistemplate",
                                        (RESTORE_TEMPLATE,)).fetchone()
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch))
                             + (sql.SQL(" TEMPLATE {}").format(sql.Identifier(template[0])) if template else sql.SQL("")))
                if timescale_version and not superuser:
                    # timescaledb_pre_restore() stops background workers, which only a superuser
                    # may: a restore account (granted SET on this one parameter) puts the whole
                    # scratch database in restoring mode before the extension exists instead, so
                    # its scheduler never runs the copy's jobs (a retention job would drop old
                    # chunks the source still has); the drill's own sessions turn it off for
                    # themselves. The database is dropped afterwards.
                    conn.execute(sql.SQL("ALTER DATABASE {} SET timescaledb.restoring = 'on'").format(
                        sql.Identifier(scratch)))
            scratch_params = restore_params | {"dbname": scratch}
            if timescale_version:
                # TimescaleDB's documented restore: extension first, catalogue triggers off
                # while pg_restore writes, back on afterwards
                with _connect(scratch_params, restore_password, timeout_s) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                    if superuser:
                        conn.execute("SELECT timescaledb_pre_restore()")
            use_list: list[str] = []
            if not superuser:  # extensions other than TimescaleDB are a superuser's to create
                listing, skipped = _restore_list(tools["pg_restore"], dump, env, timeout_s)
                use_list = [f"--use-list={listing}"]
                if skipped:
                    notes.append("extensions not restored (a superuser creates them): " + ", ".join(skipped))
            try:
                _run([tools["pg_restore"], "--no-password", "--no-owner", "--no-privileges", "--no-comments",
                      "--exit-on-error", *use_list, f"--dbname={make_conninfo(**scratch_params)}", str(dump)],
                     _child_env(restore_password), timeout_s, "pg_restore")
            finally:
                if use_list:
                    Path(use_list[0].partition("=")[2]).unlink(missing_ok=True)
            if timescale_version and not superuser:
                scratch_params = scratch_params | {"options": "-c timescaledb.restoring=off"}
            restored_chunks: dict[str, int] = {}
            if timescale_version:
                with _connect(scratch_params, restore_password, timeout_s) as conn:
                    if superuser:
                        # The copy's policies must not run while it is compared (see above).
                        # The scratch database is dropped afterwards, so its jobs stay unscheduled.
                        conn.execute("SELECT alter_job(id, scheduled => false) FROM _timescaledb_config.bgw_job")
                        conn.execute("SELECT timescaledb_post_restore()")
                    restored_chunks = _chunks(conn)
            restore_s = time.monotonic() - started
            tables = _compare((conn_params, password), (scratch_params, restore_password), timeout_s,
                              source_tables, in_dump, notes)
        finally:
            _drop(restore_params, restore_password, timeout_s, scratch, notes)
    except BackupDrillError as exc:
        raise BackupDrillError(redactor.scrub(str(exc))) from None
    except psycopg.Error as exc:
        raise BackupDrillError(redactor.scrub(f"{_where(conn_params)}: {_first_line(exc)}")) from None
    except OSError as exc:
        raise BackupDrillError(redactor.scrub(f"backup drill: {exc}")) from None
    return BackupDrill(dump_path=dump, dump_age_s=dump_age_s, restore_s=restore_s, tables=tables,
                       objectives=objectives, dump_taken=dump_taken, dump_s=dump_s, scratch_database=scratch,
                       notes=[redactor.scrub(n) for n in notes],
                       timescaledb=timescale_version[0] if timescale_version else None,
                       hypertables={n: (c, restored_chunks.get(n)) for n, c in source_chunks.items()})


# --- pieces ---------------------------------------------------------------------------------

def _connection(contract: Contract, duty: str | None = None) -> tuple[dict[str, Any], str | None]:
    """libpq parameters (the CA as a file when the contract carries one) without the password,
    and the password apart: the parameters go on pg_dump's command line, the password only
    into its environment. As the account of `duty` where the contract names one."""
    params = conninfo_to_dict(contract.timescale.dsn(duty))
    password = params.pop("password", None)
    if contract.timescale.ca_pem:
        from ..clients.tls import ca_file
        params["sslrootcert"] = ca_file(contract.timescale.ca_pem)
    return params, password


def _tools() -> dict[str, str]:
    # the server's own bin dir first, so the client matches the server's major version
    pg_bin = find_binaries().pg_bin
    found = {}
    for name in ("pg_dump", "pg_restore"):
        path = pg_bin / name if pg_bin is not None and (pg_bin / name).is_file() else shutil.which(name)
        if not path:
            raise BackupDrillError(f"{name} not found (set BACKBONE_PG_BIN to PostgreSQL's bin directory, or "
                                   f"{SETUP_HINT})")
        found[name] = str(path)
    return found


def _child_env(password: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGHOST/PGPASSWORD
    if password is not None:
        env["PGPASSWORD"] = password
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def _connect(params: dict[str, Any], password: str | None, timeout_s: float) -> psycopg.Connection:
    # the connect timeout at most 30 s; the drill's statements (a scratch database's creation,
    # whole-table comparisons) run as long as the drill's own deadline allows
    auth = {} if password is None else {"password": password}
    return timescale_client.connect_dsn(make_conninfo(**params, **auth), min(timeout_s, 30), autocommit=True,
                                        statement_timeout=False)


def _run(argv: list[str], env: dict[str, str], timeout_s: float, what: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BackupDrillError(f"{what} did not finish within {timeout_s:g} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BackupDrillError(f"{what} failed (exit {proc.returncode}): {' / '.join(detail[-4:]) or 'no output'}")
    return proc.stdout


def _user_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE NOT (schemaname = ANY(%s)) "
                        "AND schemaname NOT LIKE 'pg_temp%%' AND schemaname NOT LIKE 'pg_toast%%' "
                        "ORDER BY schemaname, tablename", (list(_INTERNAL_SCHEMAS),)).fetchall()
    return [(s, t) for s, t in rows]


def _chunks(conn: psycopg.Connection) -> dict[str, int]:
    """hypertable -> its number of chunks (compressed ones included)."""
    rows = conn.execute("SELECT hypertable_schema, hypertable_name, num_chunks FROM "
                        "timescaledb_information.hypertables ORDER BY 1, 2").fetchall()
    return {_name((schema, name)): chunks for schema, name, chunks in rows}


def _restore_list(pg_restore: str, dump: Path, env: dict[str, str], timeout_s: float) -> tuple[Path, list[str]]:
    """The dump's table of contents without the extensions a restore account may not create
    (every one but TimescaleDB, which the scratch database already has), written beside the
    dump's in a private temporary file for `pg_restore --use-list`; and the names of those
    left out."""
    toc = _run([pg_restore, "--list", str(dump)], env, timeout_s, f"pg_restore --list {dump.name}")
    kept, skipped = [], []
    for line in toc.splitlines():
        found = _TOC_EXTENSION.match(line)
        if found and found.group(1) != "timescaledb":
            skipped.append(found.group(1))
        else:
            kept.append(line)
    fd, listing = tempfile.mkstemp(prefix="backbone-restore-", suffix=".list")  # mode 0600
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(kept) + "\n")
    return Path(listing), skipped


def _dump_tables(pg_restore: str, dump: Path, env: dict[str, str], timeout_s: float) -> set[tuple[str, str]]:
    """The tables a dump holds, from its table of contents (`pg_restore --list`)."""
    toc = _run([pg_restore, "--list", str(dump)], env, timeout_s, f"pg_restore --list {dump.name}")
    return {(m.group(1), m.group(2)) for m in map(_TOC_TABLE.match, toc.splitlines()) if m}


def _compare(source: tuple[dict[str, Any], str | None], scratch: tuple[dict[str, Any], str | None],
             timeout_s: float, source_tables: list[tuple[str, str]], in_dump: set[tuple[str, str]],
             notes: list[str]) -> dict[str, tuple[int, int | None]]:
    # backbone's own tables are compared even when the dump lacks them: a dump without
    # daily_bars is not a backup of this system
    ours = {("public", name) for name in metadata.tables}
    wanted = [t for t in source_tables if t in in_dump or t in ours]
    skipped = [t for t in source_tables if t not in wanted]
    if skipped:
        notes.append("not in the dump, so not compared: " + ", ".join(_name(t) for t in skipped))
    tables: dict[str, tuple[int, int | None]] = {}
    with _connect(*source, timeout_s) as src, _connect(*scratch, timeout_s) as dst:
        for schema, table in wanted:
            ident = sql.Identifier(schema, table)
            count = sql.SQL("SELECT count(*) FROM {}").format(ident)
            source_rows = src.execute(count).fetchone()[0]
            exists = dst.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()[0]
            tables[_name((schema, table))] = (source_rows, dst.execute(count).fetchone()[0] if exists else None)
    return tables


def _drop(params: dict[str, Any], password: str | None, timeout_s: float, scratch: str, notes: list[str]) -> None:
    try:
        with _connect(params, password, timeout_s) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    except psycopg.Error as exc:  # the drill's own result matters more; say what to clean up
        notes.append(f"could not drop the scratch database {scratch}: {_first_line(exc)}; drop it by hand")


def _where(params: dict[str, Any]) -> str:
    return f"timescale {params.get('user', '')}@{params.get('host', '')}:{params.get('port', '')}/{params.get('dbname', '')}"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _name(table: tuple[str, str]) -> str:
    return table[1] if table[0] == "public" else f"{table[0]}.{table[1]}"
