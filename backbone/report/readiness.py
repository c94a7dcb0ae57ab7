"""Readiness reports: one model, rendered as JSON, Markdown or JUnit; the report owns the
exit code."""
from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..checks import DEGRADED, DOWN, OK, CheckResult, worst
from .redact import Redactor

if TYPE_CHECKING:  # the model is only a type here; reports stay light to import
    from ..contract import Contract

EXIT_READY, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


@dataclass
class Report:
    command: str
    contract: Contract
    checks: list[CheckResult]
    duration_s: float
    strict: bool = False
    generated_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def status(self) -> str:
        return worst([c.status for c in self.checks])

    @property
    def exit_code(self) -> int:
        if self.status == DOWN or (self.strict and self.status == DEGRADED):
            return EXIT_FAILED
        return EXIT_READY

    @property
    def verdict(self) -> str:
        if self.status == OK:
            return "ready"
        if self.status == DEGRADED:
            return "not ready (degraded, --strict)" if self.strict else "ready with warnings (degraded)"
        return "not ready"

    def to_dict(self) -> dict[str, Any]:
        c = self.contract
        return {"command": self.command, "generated_at": self.generated_at, "environment": c.environment,
                "tier": c.tier, "platform": c.platform, "status": self.status, "verdict": self.verdict,
                "strict": self.strict, "exit_code": self.exit_code, "duration_s": round(self.duration_s, 3),
                "checks": [r.to_dict() for r in self.checks], "manifest": c.manifest()}


_ICON = {OK: "✅", DEGRADED: "⚠️", DOWN: "❌"}


def render(report: Report, fmt: str, redactor: Redactor) -> str:
    if fmt == "json":
        text = json.dumps(report.to_dict(), indent=2)
    elif fmt == "markdown":
        text = _markdown(report)
    elif fmt == "junit":
        text = _junit(report)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return redactor.scrub(text)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(report: Report) -> str:
    c = report.contract
    lines = [
        f"# Backbone readiness: {c.environment} ({c.tier} tier, {c.platform})",
        "",
        f"**{_ICON[report.status]} {report.verdict}** — {len(report.checks)} checks in "
        f"{report.duration_s:.2f} s, {report.generated_at}",
        "",
        "| check | status | latency | code | detail |",
        "|---|---|---|---|---|",
    ]
    for r in report.checks:
        latency = "—" if r.latency_ms is None else f"{r.latency_ms:.1f} ms"
        lines.append(f"| {r.name} | {_ICON[r.status]} {r.status} | {latency} | `{r.code}` | {_cell(r.message)} |")
    errors = [r for r in report.checks if r.error]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- **{r.name}**: {_cell(r.error)}" for r in errors]
    lines += ["", "## Endpoints", ""]
    m = c.manifest()
    if c.tier == "bootstrap":
        lines.append(f"- store: `{m['bootstrap']['store']}` (embedded), in-process cache, durable event log")
    else:
        t, r, k = m.get("timescale"), m.get("redis"), m.get("kafka")
        lines.append(f"- timescale: `{t['host']}:{t['port']}/{t['database']}` as `{t['user']}`, "
                     f"sslmode {t['sslmode']}, ha {t['ha']}, pool {t['pool']['size']}+{t['pool']['max_overflow']}"
                     if t else "- timescale: not in the contract")
        lines.append(f"- redis: `{r['host']}:{r['port']}` ({r['mode']}), cache `{r['cache_policy']['namespace']}` "
                     f"TTL {r['cache_policy']['ttl_seconds']} s" if r else "- redis: not in the contract")
        lines.append(f"- kafka: `{k['bootstrap_servers']}`, {k['expected_brokers']} broker(s) expected, "
                     f"{len(k['topics'])} topic(s) declared" if k else "- kafka: not in the contract")
    return "\n".join(lines) + "\n"


def _junit(report: Report) -> str:
    """One test case per check: down is a failure, degraded a failure only with --strict
    (otherwise a passing case whose system-out carries the warning)."""
    c = report.contract
    failures = sum(1 for r in report.checks if r.status == DOWN or (report.strict and r.status == DEGRADED))
    suite = ET.Element("testsuite", name=f"backbone.{report.command}.{c.environment}",
                       tests=str(len(report.checks)), failures=str(failures), errors="0", skipped="0",
                       time=f"{report.duration_s:.3f}", timestamp=report.generated_at)
    props = ET.SubElement(suite, "properties")
    for key, value in (("environment", c.environment), ("tier", c.tier), ("platform", c.platform),
                       ("status", report.status), ("exit_code", str(report.exit_code))):
        ET.SubElement(props, "property", name=key, value=value)
    for r in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"backbone.{c.environment}", name=r.name,
                             time=f"{(r.latency_ms or 0) / 1000:.3f}")
        if r.status == DOWN or (report.strict and r.status == DEGRADED):
            failure = ET.SubElement(case, "failure", message=r.message, type=r.code)
            failure.text = r.error or r.message
        out = ET.SubElement(case, "system-out")
        out.text = f"{r.status} ({r.code}): {r.message}" + (f"\n{r.error}" if r.error else "")
    root = ET.Element("testsuites", name="backbone", tests=suite.get("tests"), failures=suite.get("failures"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

