"""The `tls` check against real TLS servers started here on 127.0.0.1, with certificates from
the local CA (`backbone.local.pki.Authority`): each verdict the check can give, each from a
real handshake (or a real refusal to make one)."""
from __future__ import annotations

import socket
import ssl
import threading
import warnings

import pytest

from backbone.checks import DEGRADED, DOWN, OK
from backbone.local.pki import Authority
from backbone.security.tls import PG_SSL_REQUEST, TlsFailure, check_addresses, handshake


class Server:
    """A one-thread server on 127.0.0.1 that answers every connection the same way until closed:
    `mode` "tls" (a TLS handshake with `cert`), "postgres" (the SSLRequest answered `answer`,
    then a handshake after S), "plaintext" (a line of text, then the connection closed),
    "silent" (accepts and says nothing)."""

    def __init__(self, mode: str, issued=None, *, answer: bytes = b"S", max_version=None):
        self.mode, self.answer = mode, answer
        self.context = None
        if issued is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(issued.cert, issued.key)
            if max_version is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.context.minimum_version = max_version
                    self.context.maximum_version = max_version
                self.context.set_ciphers("ALL:@SECLEVEL=0")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(3)
            try:
                self._answer(conn)
            except (OSError, ssl.SSLError):
                pass  # the client gave up or refused our certificate: its verdict is what is tested

    def _answer(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            self.held.append(conn)
            return
        if self.mode == "plaintext":
            conn.recv(1024)
            conn.sendall(b"-ERR unknown command\r\n")
            conn.close()
            return
        if self.mode == "postgres":
            assert conn.recv(8) == PG_SSL_REQUEST
            conn.sendall(self.answer)
            if self.answer != b"S":
                conn.close()
                return
        with self.context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)  # until the client closes

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return Authority(tmp_path_factory.mktemp("ca"), "test CA")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    return Authority(tmp_path_factory.mktemp("other-ca"), "another CA")


@pytest.fixture
def serve():
    started: list[Server] = []

    def start(*args, **kwargs) -> Server:
        started.append(Server(*args, **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.close()


def check(server: Server, ca: Authority, *, postgres: bool = False, timeout_s: float = 2.0, note=None):
    return check_addresses("tls.test", "Test", [("127.0.0.1", server.port)], ca.pem, timeout_s,
                           postgres=postgres, note=note)


def test_a_valid_certificate_is_ok_with_protocol_and_days_left(ca, serve):
    server = serve("tls", ca.issue("valid"))
    result = check(server, ca)
    assert (result.status, result.code) == (OK, "ok"), result.message
    row = result.details["addresses"][0]
    assert row["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert 396 <= row["days_left"] <= 397
    assert f"127.0.0.1:{server.port}" == row["address"]
    assert "397 days" in result.message or "396 days" in result.message


def test_ten_days_left_is_degraded(ca, serve):
    result = check(serve("tls", ca.issue("ten-days", days=10)), ca)
    assert (result.status, result.code) == (DEGRADED, "expires_soon")
    assert "expires in 10 days" in result.message or "expires in 9 days" in result.message


def test_three_days_left_is_down(ca, serve):
    result = check(serve("tls", ca.issue("three-days", days=3)), ca)
    assert (result.status, result.code) == (DOWN, "expires_soon")


def test_a_certificate_that_does_not_name_the_address_is_down(ca, serve):
    server = serve("tls", ca.issue("elsewhere", sans=("db.example.internal", "localhost")))
    result = check(server, ca)
    assert (result.status, result.code) == (DOWN, "hostname_mismatch")
    assert "does not name the address" in result.message


def test_a_certificate_from_another_ca_is_down(ca, other_ca, serve):
    result = check(serve("tls", other_ca.issue("foreign")), ca)
    assert (result.status, result.code) == (DOWN, "untrusted")
    assert "not signed by the contract's CA" in result.message


def test_a_plaintext_server_is_down(ca, serve):
    result = check(serve("plaintext"), ca)
    assert (result.status, result.code) == (DOWN, "not_tls")


def test_postgres_ssl_request_answered_with_s_then_a_valid_handshake_is_ok(ca, serve):
    result = check(serve("postgres", ca.issue("pg")), ca, postgres=True)
    assert (result.status, result.code) == (OK, "ok"), result.message


def test_postgres_answering_the_ssl_request_with_n_is_down(ca, serve):
    result = check(serve("postgres", answer=b"N"), ca, postgres=True)
    assert (result.status, result.code) == (DOWN, "tls_refused")
    assert "answered the SSLRequest with N" in result.message


def test_a_server_that_only_offers_tls_1_1_is_down(ca, serve):
    server = serve("tls", ca.issue("old"), max_version=ssl.TLSVersion.TLSv1_1)
    result = check(server, ca)
    assert (result.status, result.code) == (DOWN, "protocol_old")


def test_nothing_listening_is_unreachable_and_only_degraded(ca, serve):
    """A stopped server is the service probe's to report (down there); its TLS cannot be judged."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(TlsFailure) as failure:
        handshake("127.0.0.1", port, ca.pem, 1.0)
    assert failure.value.code == "unreachable"
    good = serve("tls", ca.issue("valid"))
    result = check_addresses("tls.test", "Test", [("127.0.0.1", good.port), ("127.0.0.1", port)], ca.pem, 2.0)
    assert (result.status, result.code) == (DEGRADED, "unreachable")
    assert [r["status"] for r in result.details["addresses"]] == [OK, DEGRADED]


def test_a_silent_server_times_out_within_the_budget(ca, serve):
    import time
    started = time.monotonic()
    result = check(serve("silent"), ca, timeout_s=0.5)
    assert (result.status, result.code) == (DOWN, "timeout")
    assert time.monotonic() - started < 1.5


def test_a_client_side_note_makes_a_good_handshake_degraded(ca, serve):
    result = check(serve("tls", ca.issue("valid")), ca, note="clients do not check the name")
    assert (result.status, result.code) == (DEGRADED, "not_verified_by_clients")


def test_the_worst_address_decides_and_each_bad_one_is_named(ca, other_ca, serve):
    good, bad = serve("tls", ca.issue("valid")), serve("tls", other_ca.issue("foreign"))
    result = check_addresses("tls.test", "Test", [("127.0.0.1", good.port), ("127.0.0.1", bad.port)], ca.pem, 2.0)
    assert (result.status, result.code) == (DOWN, "untrusted")
    assert f"127.0.0.1:{bad.port}" in result.message and f"127.0.0.1:{good.port}" not in result.message
    assert [r["status"] for r in result.details["addresses"]] == [OK, DOWN]
