"""The seeds' simulated failover drill: replay recorded ingest results, mark some dimensions
failed, and say what the failover decision would be. Touches no service.

A dimension is one ingest feed (daily_bars, intraday_trades, macro_events, ...). When any
required dimension has failed, the institutional tier cannot serve it, so the decision is
to fall back to the bootstrap tier; otherwise the stack stays on institutional. Pure
functions throughout: the CLI reads the file, this module only judges.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from ..errors import ConfigError

FALLBACK = "fall back to the bootstrap tier"
STAY = "stay on institutional"


class SimulationInputError(ConfigError):
    """Recorded results or drill options that cannot be replayed; the message names the
    item and field."""


class IngestResult(BaseModel):
    # Unknown keys are ignored: exports carry more (timestamps, run ids) than a drill needs.
    model_config = ConfigDict(extra="ignore", frozen=True)

    dimension: str = Field(min_length=1)
    status: Literal["ok", "warn", "fail"]
    rows: StrictInt = Field(ge=0)
    freshness_seconds: float | None = Field(None, ge=0)  # a failed run may have no data at all
    symbols: list[str] = Field(default_factory=list)


def parse_results(data: Any) -> list[IngestResult]:
    """Validate recorded results (the decoded JSON list)."""
    if not isinstance(data, list):
        raise SimulationInputError(f"results: expected a JSON list of ingest results, got {_kind(data)}")
    if not data:
        raise SimulationInputError("results: the list is empty; there is nothing to replay")
    parsed: list[IngestResult] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        if isinstance(item, IngestResult):
            result = item
        elif not isinstance(item, dict):
            raise SimulationInputError(f"results[{i}]: expected an object, got {_kind(item)}")
        else:
            try:
                result = IngestResult.model_validate(item)
            except ValidationError as exc:
                raise SimulationInputError(_first_error(i, item, exc)) from None
        # one result per dimension: with two, which one the drill judged would be a guess
        if result.dimension in seen:
            raise SimulationInputError(f"results[{i}].dimension: {result.dimension!r} is recorded twice "
                                       f"(first at results[{seen[result.dimension]}])")
        seen[result.dimension] = i
        parsed.append(result)
    return parsed


def load_results(path: Path) -> list[IngestResult]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SimulationInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SimulationInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    try:
        return parse_results(data)
    except SimulationInputError as exc:
        raise SimulationInputError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class DimensionOutcome:
    dimension: str
    recorded_status: str | None  # None: required, but no result was recorded
    status: str                  # after the drill marked it
    marked_failed: bool
    required: bool
    rows: int | None
    freshness_seconds: float | None
    symbols: list[str] = field(default_factory=list)


@dataclass
class SimulatedDrill:
    dimensions: list[DimensionOutcome]
    fail_dimensions: list[str]
    required: list[str]
    reasons: list[str]

    @property
    def fallback(self) -> bool:
        return bool(self.reasons)

    @property
    def decision(self) -> str:
        return FALLBACK if self.fallback else STAY

    @property
    def exit_code(self) -> int:
        return 0  # a replay always reaches a decision; bad recordings raise SimulationInputError (exit 2)

    @property
    def warnings(self) -> list[str]:
        return [f"{d.dimension}: recorded status warn" for d in self.dimensions if d.status == "warn"]

    def to_dict(self) -> dict[str, Any]:
        return {"simulated": True, "decision": self.decision, "fallback": self.fallback,
                "target_tier": "bootstrap" if self.fallback else "institutional",
                "reasons": self.reasons, "warnings": self.warnings, "fail_dimensions": self.fail_dimensions,
                "required": self.required, "dimensions": [asdict(d) for d in self.dimensions]}

    def to_markdown(self) -> str:
        icon = "⚠️" if self.fallback else "✅"
        lines = ["# Simulated failover drill", "",
                 f"**{icon} Decision: {self.decision}** (simulated from recorded ingest results; no service touched)",
                 ""]
        if self.reasons:
            lines += ["Reasons:", "", *[f"- {r}" for r in self.reasons], ""]
        if self.warnings:
            lines += ["Warnings:", "", *[f"- {w}" for w in self.warnings], ""]
        lines += ["| dimension | required | recorded | after drill | rows | freshness | symbols |",
                  "|---|---|---|---|---|---|---|"]
        for d in self.dimensions:
            after = d.status + (" (marked)" if d.marked_failed else "")
            fresh = "—" if d.freshness_seconds is None else f"{d.freshness_seconds:g} s"
            symbols = ", ".join(d.symbols[:5]) + (f" (+{len(d.symbols) - 5})" if len(d.symbols) > 5 else "")
            lines.append(f"| {d.dimension} | {'yes' if d.required else 'no'} | {d.recorded_status or 'missing'} | "
                         f"{after} | {'—' if d.rows is None else d.rows} | {fresh} | {symbols or '—'} |")
        return "\n".join(lines) + "\n"


def simulate_failover(results: Iterable[IngestResult | dict[str, Any]], fail_dimensions: Iterable[str] | None = None,
                      required: Iterable[str] | None = None) -> SimulatedDrill:
    """Mark `fail_dimensions` (default: every recorded dimension) failed and decide.
    `required` defaults to every recorded dimension; a required dimension with no
    recorded result counts as failed, since nothing shows it is served."""
    if not isinstance(results, (list, dict, str, bytes)) and isinstance(results, Iterable):
        results = list(results)  # a tuple or generator of results; a dict is a shape error, said below
    parsed = parse_results(results)
    recorded = {r.dimension: r for r in parsed}
    names = list(recorded)
    marked = _names("fail_dimensions", fail_dimensions) if fail_dimensions else list(names)
    unknown = [d for d in marked if d not in recorded]
    if unknown:
        # a typo here would make the drill "pass" by failing nothing
        raise SimulationInputError(f"fail_dimensions: {', '.join(map(repr, unknown))} not in the recorded results "
                                   f"({', '.join(names)})")
    needed = _names("required", required) if required is not None else list(names)
    outcomes: list[DimensionOutcome] = []
    reasons: list[str] = []
    for name in names + [d for d in needed if d not in recorded]:
        r = recorded.get(name)
        is_marked, is_required = name in marked, name in needed
        status = "fail" if is_marked or r is None else r.status
        outcomes.append(DimensionOutcome(
            dimension=name, recorded_status=r.status if r else None, status=status, marked_failed=is_marked,
            required=is_required, rows=r.rows if r else None, freshness_seconds=r.freshness_seconds if r else None,
            symbols=list(r.symbols) if r else []))
        if is_required and status == "fail":
            if r is None:
                reasons.append(f"{name}: required, but no ingest result was recorded")
            elif is_marked:
                reasons.append(f"{name}: failed (marked by the drill; recorded {r.status}, {r.rows} rows)")
            else:
                reasons.append(f"{name}: failed (recorded)")
    return SimulatedDrill(dimensions=outcomes, fail_dimensions=marked, required=needed, reasons=reasons)


def _names(what: str, values: Iterable[str]) -> list[str]:
    if isinstance(values, str):  # "daily_bars" would otherwise iterate as letters
        values = [values]
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise SimulationInputError(f"{what}: expected dimension names, got {v!r}")
        if v.strip() not in out:
            out.append(v.strip())
    return out


def _first_error(index: int, item: dict, exc: ValidationError) -> str:
    named = f" (dimension {item['dimension']!r})" if isinstance(item.get("dimension"), str) else ""
    problems = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        if err["type"] == "missing":
            problems.append(f"results[{index}]{loc}{named}: missing")
        else:
            problems.append(f"results[{index}]{loc}{named}: {err['msg']}, got {err.get('input')!r}")
    return "; ".join(problems)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value),
                                                                                         type(value).__name__)
