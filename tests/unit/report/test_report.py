"""Reports own the exit code; every rendered text is scrubbed of secrets."""
import json

import pytest

from backbone.checks import DEGRADED, DOWN, OK, CheckResult, run_concurrently
from backbone.contract import Contract
from backbone.report import Redactor, Report, render

SECRET = "Sup3r/Secret:pw"


def contract():
    return Contract.model_validate({
        "tier": "institutional", "platform": "docker",
        "timescale": {"password": SECRET}, "redis": {"password": SECRET}, "kafka": {}})


def report(*statuses, strict=False):
    checks = [CheckResult(f"c{i}", s, "x", "m") for i, s in enumerate(statuses)]
    return Report("validate", contract(), checks, 0.1, strict=strict)


@pytest.mark.parametrize("statuses, strict, code", [
    ((OK, OK), False, 0), ((OK, DEGRADED), False, 0), ((OK, DEGRADED), True, 1),
    ((OK, DOWN), False, 1), ((DEGRADED, DOWN), True, 1),
])
def test_exit_code(statuses, strict, code):
    assert report(*statuses, strict=strict).exit_code == code


def test_render_scrubs_secrets_even_inside_driver_errors():
    c = contract()
    checks = [CheckResult("timescale", DOWN, "auth_failed", "down",
                          error=f"could not connect to {c.timescale.dsn()} with {SECRET} or Sup3r%2FSecret%3Apw")]
    r = Report("validate", c, checks, 0.1)
    for fmt in ("json", "markdown"):
        text = render(r, fmt, Redactor(c.secrets()))
        assert SECRET not in text and "Sup3r%2FSecret%3Apw" not in text
        assert "***" in text


def test_json_report_shape():
    data = json.loads(render(report(OK, DEGRADED), "json", Redactor()))
    assert data["status"] == "degraded" and data["exit_code"] == 0
    assert [c["status"] for c in data["checks"]] == ["ok", "degraded"]
    assert data["manifest"]["tier"] == "institutional"


def test_markdown_escapes_table_cells():
    r = Report("validate", contract(), [CheckResult("x", OK, "ok", "a | b\nc")], 0.1)
    assert "a \\| b c" in render(r, "markdown", Redactor())


def test_runner_bounds_a_hung_check_by_the_deadline():
    import threading
    never = threading.Event()

    def hung():
        never.wait(60)
        return CheckResult("hung", OK, "ok", "never")

    results = run_concurrently({"fast": lambda: CheckResult("fast", OK, "ok", "m"), "hung": hung}, deadline_s=0.3)
    assert [r.status for r in results] == [OK, DOWN]
    assert results[1].code == "timeout"
    never.set()


def test_runner_turns_a_probe_exception_into_a_down_result():
    def boom():
        raise RuntimeError("kaput")
    [result] = run_concurrently({"boom": boom}, deadline_s=1)
    assert result.status == DOWN and result.code == "probe_error" and "kaput" in result.error
