"""The schedule file of `backbone serve`: which ingest jobs run, from where, and how often.

TOML, read with `tomllib`; every problem is one `ConfigError` naming the file, the job and
the field (`schedule.toml: job 'bars-drop': interval_s must be > 0`), so a bad schedule
stops `serve` before anything starts (exit 2) instead of surfacing as a failing task.

    cache_interval_s = 15          # optional: how often cache maintenance runs

    [[job]]
    name = "bars-drop"
    dimension = "bars"
    drop_dir = "incoming/bars"     # relative to this file's directory
    interval_s = 30
    jitter_s = 5

    [[job]]
    name = "trades-live"
    dimension = "trades"
    generate = { rows = 500, symbols = 5 }
    interval_s = 10

A drop directory is not required to exist when the schedule is read: a volume mounted late
is a failing job (restarted with backoff and reported), not a refused schedule.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DIMENSIONS = ("bars", "trades", "macro")
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SECONDS = 86_400.0
MAX_ROWS = 1_000_000
MAX_SYMBOLS = 1_000
DEFAULT_CACHE_INTERVAL_S = 15.0
_TOP_KEYS = {"job", "cache_interval_s"}
_JOB_KEYS = {"name", "dimension", "drop_dir", "generate", "interval_s", "jitter_s"}
_GENERATE_KEYS = {"rows", "symbols"}


@dataclass(frozen=True)
class Generated:
    rows: int
    symbols: int = 10


@dataclass(frozen=True)
class Job:
    name: str
    dimension: str
    interval_s: float
    jitter_s: float = 0.0
    drop_dir: Path | None = None      # absolute, resolved against the schedule file's directory
    generate: Generated | None = None

    @property
    def source(self) -> str:
        if self.drop_dir is not None:
            return f"drop directory {self.drop_dir}"
        return f"generated: {self.generate.rows} rows, {self.generate.symbols} symbols"


@dataclass(frozen=True)
class Schedule:
    path: Path
    jobs: tuple[Job, ...]
    cache_interval_s: float = DEFAULT_CACHE_INTERVAL_S


def load_schedule(path: Path | str) -> Schedule:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--schedule {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--schedule {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_schedule(text, path)


def parse_schedule(text: str, path: Path | str) -> Schedule:
    """The schedule in `text`; `path` names it in errors and anchors relative drop dirs."""
    path = Path(path)
    where = str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {_names(unknown)}; expected [[job]] tables "
                          "and optionally cache_interval_s")
    cache_interval_s = _seconds(doc.get("cache_interval_s", DEFAULT_CACHE_INTERVAL_S), f"{where}: cache_interval_s")
    raw_jobs = doc.get("job", [])
    if not isinstance(raw_jobs, list):
        raise ConfigError(f"{where}: job must be an array of tables ([[job]]), not a single table")
    base = path.resolve().parent
    jobs: list[Job] = []
    for index, raw in enumerate(raw_jobs, 1):
        job = _job(raw, index, where, base)
        if any(j.name == job.name for j in jobs):
            raise ConfigError(f"{where}: job {job.name!r}: name is used by another job; names must be unique")
        jobs.append(job)
    return Schedule(path, tuple(jobs), cache_interval_s)


def _job(raw: Any, index: int, where: str, base: Path) -> Job:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: job #{index} must be a table")
    name = raw.get("name")
    if name is None:
        raise ConfigError(f"{where}: job #{index}: name is required")
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise ConfigError(f"{where}: job #{index}: name must be 1-64 of A-Z a-z 0-9 . _ - "
                          "starting with a letter or digit")
    at = f"{where}: job {name!r}"
    unknown = sorted(set(raw) - _JOB_KEYS)
    if unknown:
        raise ConfigError(f"{at}: unknown key(s) {_names(unknown)}; a job has {', '.join(sorted(_JOB_KEYS))}")
    dimension = raw.get("dimension")
    if dimension is None:
        raise ConfigError(f"{at}: dimension is required ({', '.join(DIMENSIONS)})")
    if dimension not in DIMENSIONS:
        raise ConfigError(f"{at}: dimension must be one of {', '.join(DIMENSIONS)}")
    if "interval_s" not in raw:
        raise ConfigError(f"{at}: interval_s is required")
    interval_s = _seconds(raw["interval_s"], f"{at}: interval_s")
    jitter_s = _seconds(raw.get("jitter_s", 0), f"{at}: jitter_s", zero_ok=True)
    has_dir, has_generate = "drop_dir" in raw, "generate" in raw
    if has_dir == has_generate:
        raise ConfigError(f"{at}: give exactly one source, drop_dir or generate")
    if has_dir:
        drop_dir = raw["drop_dir"]
        if not isinstance(drop_dir, str) or not drop_dir.strip():
            raise ConfigError(f"{at}: drop_dir must be a non-empty path")
        return Job(name, dimension, interval_s, jitter_s, drop_dir=base / Path(drop_dir).expanduser())
    return Job(name, dimension, interval_s, jitter_s, generate=_generated(raw["generate"], at))


def _generated(raw: Any, at: str) -> Generated:
    if not isinstance(raw, dict):
        raise ConfigError(f"{at}: generate must be a table, e.g. {{ rows = 500, symbols = 5 }}")
    unknown = sorted(set(raw) - _GENERATE_KEYS)
    if unknown:
        raise ConfigError(f"{at}: generate: unknown key(s) {_names(unknown)}; expected rows and symbols")
    if "rows" not in raw:
        raise ConfigError(f"{at}: generate.rows is required")
    rows = _whole(raw["rows"], f"{at}: generate.rows", MAX_ROWS)
    symbols = _whole(raw.get("symbols", 10), f"{at}: generate.symbols", MAX_SYMBOLS)
    return Generated(rows, symbols)


def _seconds(value: Any, what: str, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number of seconds")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{what} must be {'>= 0' if zero_ok else '> 0'}")
    if value > MAX_SECONDS:
        raise ConfigError(f"{what} must be at most {MAX_SECONDS:g} (a day)")
    return float(value)


def _whole(value: Any, what: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number")
    if not 1 <= value <= most:
        raise ConfigError(f"{what} must be from 1 to {most}")
    return value


def _names(keys: list[str]) -> str:
    return ", ".join(repr(k[:40]) for k in keys)
