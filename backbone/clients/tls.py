"""The contract's CA bundles as the drivers take them. libpq reads a CA from a file only, so
`ca_file` writes the PEM once, named by its digest, into a private cache directory;
redis-py and librdkafka take the PEM text itself."""
from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from pathlib import Path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "backbone" / "ca"


def ca_file(pem: str) -> str:
    """A file holding `pem` (the same file for the same bundle), for libpq's sslrootcert."""
    digest = hashlib.sha256(pem.encode()).hexdigest()[:32]
    for where in (_cache_dir(), Path(tempfile.gettempdir()) / f"backbone-ca-{os.getuid()}"):
        path = where / f"{digest}.pem"
        try:
            if path.is_file() and path.read_text() == pem:
                return str(path)
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = where / f".{digest}.{os.getpid()}.tmp"
            tmp.write_text(pem)
            os.replace(tmp, path)
            return str(path)
        except OSError:
            continue  # a read-only home: the temporary directory instead
    raise OSError("no writable directory for the contract's CA bundle")


def client_context(pem: str | None, *, check_hostname: bool = True) -> ssl.SSLContext:
    """A TLS client context that trusts `pem` only (the system's CAs when None), TLS 1.2 at least."""
    context = ssl.create_default_context(cadata=pem) if pem else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    return context
