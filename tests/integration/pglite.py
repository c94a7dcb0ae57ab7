"""A real TimescaleDB build (PGlite + timescaledb, served on the PostgreSQL wire protocol)
for the Timescale-specific DDL tests. Installed by scripts/setup.sh."""
import os
import subprocess
import time
from pathlib import Path

from backbone.local.services import free_port

PGLITE_DIR = Path(os.environ.get("BACKBONE_PGLITE_DIR") or
                  Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "backbone" / "pglite")


def available() -> str | None:
    """None when PGlite can run here, else the reason it cannot."""
    if not (PGLITE_DIR / "server.mjs").is_file() or not (PGLITE_DIR / "node_modules").is_dir():
        return f"PGlite + TimescaleDB not installed in {PGLITE_DIR}; run `make setup`"
    return None


class PGliteServer:
    def __init__(self, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        # PGlite's socket server speaks no TLS: clients must not ask for it
        return f"postgresql://postgres:postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def start(self, timeout_s: float = 60) -> "PGliteServer":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["node", str(PGLITE_DIR / "server.mjs"), str(self.port)], cwd=PGLITE_DIR,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"PGlite exited: {self.log_path.read_text()[-2000:]}")
            if b"READY" in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"PGlite did not start within {timeout_s} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
