"""Run the CLI in this process (no interpreter start-up per call), capturing what it prints."""
import contextlib
import io
import time

from backbone.cli import main


def run(*argv) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - started
