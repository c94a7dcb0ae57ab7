"""Reports and redaction: the readiness report (owner of the exit code), its renderers,
and the redactor every printed or written text passes through."""
from .readiness import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_READY, Report, render
from .redact import MASK, Redactor

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_READY", "MASK", "Redactor", "Report", "render"]
