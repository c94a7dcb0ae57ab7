"""The local environment's certificate authority and the certificates it issues.

One CA per environment (`tls/ca.pem`); a server certificate for every listener, named as
clients reach it (127.0.0.1 and localhost); client certificates where a service uses them
(replication, brokers, controllers, etcd's members). Keys are EC P-256 and written mode
0600; certificates are public. The CA's PEM is what the outputs contract carries, so every
client verifies the server it talks to.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
LEAF_DAYS = 397  # what public CAs may issue at most: the `tls` check counts down from it
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _names(sans: tuple[str, ...] | list[str]):
    from cryptography import x509
    out = []
    for name in sans:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


class Authority:
    """The CA of one environment, kept in `directory` (created mode 0700)."""

    def __init__(self, directory: Path, name: str = "backbone local CA"):
        self.directory = Path(directory)
        self.cert_path = self.directory / "ca.pem"
        self.key_path = self.directory / "ca.key"
        if not self.cert_path.exists():
            self._create(name)

    def _create(self, name: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write(self.key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), 0o600)
        _write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    @property
    def pem(self) -> str:
        return self.cert_path.read_text()

    def issue(self, name: str, sans: tuple[str, ...] | list[str] = LOOPBACK_NAMES, *, server: bool = True,
              client: bool = False, days: int = LEAF_DAYS, directory: Path | None = None) -> Issued:
        """A leaf certificate for `name` (its common name, and the client principal where a
        service maps certificates to users), valid for `sans`; written as NAME.pem and NAME.key
        in `directory` (the CA's by default). Issued again only when absent."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        where = Path(directory) if directory else self.directory
        where.mkdir(parents=True, exist_ok=True)
        out = Issued(where / f"{name}.pem", where / f"{name}.key")
        if out.cert.exists() and out.key.exists():
            return out
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                                key_cert_sign=False, crl_sign=False, content_commitment=False,
                                                data_encipherment=False, key_agreement=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(_names(sans)), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(out.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()), 0o600)
        _write(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return out


def secret_for(passwords: dict[str, str], name: str) -> str:
    """The environment's password called `name`, made on first use (kept in state.json, 0600)."""
    import secrets
    return passwords.setdefault(name, secrets.token_urlsafe(24))


def ca_pem(ca: "Authority | None") -> str | None:
    """The PEM a contract carries for `ca` (None on an --insecure environment)."""
    return ca.pem if ca is not None else None


def hand_to(user: str | None, *paths: Path) -> None:
    """Give files to the account a service runs as (PostgreSQL refuses a key another user owns
    or others can read)."""
    if not user:
        return
    import pwd
    entry = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)
