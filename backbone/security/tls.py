"""The `tls` readiness check: a real TLS handshake to each address a service's clients reach
(PostgreSQL after its SSLRequest), the chain verified with the contract's CA only, the host
name matched, the protocol TLS 1.2 or newer, and the days left before the certificate expires.

Every failure is said in one fixed sentence chosen by its code: the driver's or OpenSSL's own
text is never repeated (it may name more than the reader should see)."""
from __future__ import annotations

import socket
import ssl
import struct
import time
from dataclasses import dataclass

from ..checks import DEGRADED, DOWN, OK, CheckResult, worst
from ..clients.tls import client_context

DAYS_DEGRADED = 30  # fewer days left than this: degraded (renew soon)
DAYS_DOWN = 7  # fewer than this: down (renew now)
MIN_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # length 8, the SSLRequest code

# code -> the one sentence that explains it (each ends without a full stop: the check adds it)
SENTENCES = {
    "unreachable": "cannot connect (the service probe says whether it is down; TLS is not verified there)",
    "timeout": "the TLS handshake got no answer in time",
    "tls_refused": "the server refuses TLS (it answered the SSLRequest with N)",
    "not_tls": "the server does not speak TLS",
    "untrusted": "the certificate is not signed by the contract's CA",
    "hostname_mismatch": "the certificate does not name the address clients use",
    "expired": "the certificate has expired",
    "protocol_old": "the server offers nothing newer than TLS 1.1",
    "handshake_failed": "the TLS handshake failed",
}


class TlsFailure(Exception):
    """A handshake that did not complete; `code` is one of SENTENCES."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Handshake:
    protocol: str
    not_after: str  # as the certificate says it, e.g. "Jan  5 09:34:43 2027 GMT"
    days_left: float


def handshake(host: str, port: int, ca_pem: str | None, timeout_s: float, *, postgres: bool = False) -> Handshake:
    """Connect to host:port, ask for TLS as PostgreSQL does when `postgres`, and complete a
    handshake that trusts `ca_pem` only and checks that the certificate names `host`."""
    deadline = time.monotonic() + timeout_s
    context = client_context(ca_pem)
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:  # refused, or no route, or no TCP answer in time: no handshake to judge
        raise TlsFailure("unreachable") from None
    try:
        if postgres:
            _ssl_request(sock, deadline)
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        with context.wrap_socket(sock, server_hostname=host) as tls:
            protocol, cert = tls.version() or "", tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        raise TlsFailure(_verify_code(exc)) from None
    except ssl.SSLError as exc:
        raise TlsFailure(_ssl_code(exc)) from None
    except socket.timeout:
        raise TlsFailure("timeout") from None
    except OSError:  # reset or closed mid-handshake: what a plaintext server does to a ClientHello
        raise TlsFailure("not_tls") from None
    finally:
        sock.close()
    if protocol not in MIN_PROTOCOLS:  # the context asks for 1.2 at least; said again in case
        raise TlsFailure("protocol_old")
    not_after = cert["notAfter"]
    return Handshake(protocol, not_after, (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400)


def _ssl_request(sock: socket.socket, deadline: float) -> None:
    """PostgreSQL's SSLRequest: 'S' means a handshake follows, 'N' that the server has no TLS."""
    sock.settimeout(max(0.05, deadline - time.monotonic()))
    sock.sendall(PG_SSL_REQUEST)
    answer = sock.recv(1)
    if answer == b"N":
        raise TlsFailure("tls_refused")
    if answer != b"S":
        raise TlsFailure("not_tls")


def _verify_code(exc: ssl.SSLCertVerificationError) -> str:
    # OpenSSL's X509_V_ERR_*: 62 host name mismatch, 64 IP address mismatch, 10 expired
    return {62: "hostname_mismatch", 64: "hostname_mismatch", 10: "expired"}.get(exc.verify_code, "untrusted")


def _ssl_code(exc: ssl.SSLError) -> str:
    reason = (exc.reason or "").upper()
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason or "HTTP_REQUEST" in reason \
            or "PACKET_LENGTH_TOO_LONG" in reason:
        return "not_tls"
    if "UNSUPPORTED_PROTOCOL" in reason or "PROTOCOL_VERSION" in reason or "NO_PROTOCOLS" in reason:
        return "protocol_old"
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "not_tls"
    return "handshake_failed"


def judge_address(address: str, found: Handshake | TlsFailure) -> dict:
    """One address's verdict: down on a failed handshake or under DAYS_DOWN days, degraded
    under DAYS_DEGRADED days or when nothing could be reached (an outage is the service
    probe's to report: a stopped broker is no TLS fault), else ok; a plain dict for the
    check's details."""
    if isinstance(found, TlsFailure):
        return {"address": address, "status": DEGRADED if found.code == "unreachable" else DOWN, "code": found.code}
    days = found.days_left
    if days < 0:
        status, code = DOWN, "expired"
    elif days < DAYS_DOWN:
        status, code = DOWN, "expires_soon"
    elif days < DAYS_DEGRADED:
        status, code = DEGRADED, "expires_soon"
    else:
        status, code = OK, "ok"
    return {"address": address, "status": status, "code": code, "protocol": found.protocol,
            "not_after": found.not_after, "days_left": round(days, 1)}


def check_addresses(name: str, service: str, addresses: list[tuple[str, int]], ca_pem: str | None,
                    timeout_s: float, *, postgres: bool = False, note: str | None = None) -> CheckResult:
    """The `tls` check of one service: every address in turn, each within an equal share of
    `timeout_s`; the worst verdict wins and the message names each address that is not ok."""
    started = time.perf_counter()
    share = timeout_s / max(1, len(addresses))
    rows = []
    for host, port in addresses:
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        try:
            found: Handshake | TlsFailure = handshake(host, port, ca_pem, share, postgres=postgres)
        except TlsFailure as failure:
            found = failure
        rows.append(judge_address(where, found))
    latency = (time.perf_counter() - started) * 1000
    status = worst([r["status"] for r in rows])
    details = {"addresses": rows}
    if status == OK:
        least = min(r["days_left"] for r in rows)
        protocols = ", ".join(sorted({r["protocol"] for r in rows}))
        message = (f"{service} speaks {protocols} at {len(rows)} address(es), verified with the contract's CA "
                   f"and host name; the nearest certificate expiry is in {least:.0f} days")
        if note:
            return CheckResult(name, DEGRADED, "not_verified_by_clients", f"{message}, but {note}.",
                               latency_ms=latency, details=details)
        return CheckResult(name, OK, "ok", message + ".", latency_ms=latency, details=details)
    bad = [r for r in rows if r["status"] == status]
    reasons = "; ".join(f"{r['address']}: {_reason(r)}" for r in bad)
    return CheckResult(name, status, bad[0]["code"], f"{service} TLS is {status}: {reasons}.",
                       latency_ms=latency, details=details)


def _reason(row: dict) -> str:
    if row["code"] == "expires_soon":
        return f"the certificate expires in {row['days_left']:.0f} days"
    return SENTENCES.get(row["code"], SENTENCES["handshake_failed"])


def plaintext(name: str, service: str, how: str) -> CheckResult:
    """A contract that gives a service no TLS: degraded, and said so."""
    return CheckResult(name, DEGRADED, "plaintext",
                       f"{service} is reached in plaintext ({how}): for debugging only.",
                       details={"tls": False})
