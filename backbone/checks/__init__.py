"""Readiness checks: the result type every concept's check returns and the concurrent
runner. Concepts own their checks; `backbone validate` only assembles them."""
from .result import DEGRADED, DOWN, OK, Check, CheckResult, judged, worst
from .runner import run_concurrently

__all__ = ["DEGRADED", "DOWN", "OK", "Check", "CheckResult", "judged", "worst", "run_concurrently"]
