"""A stack's certificate authority and its services' certificates, as PEM text.

The stacks keep their TLS material in stack config, like their passwords
(`python -m infra.deploy secrets --stack NAME` issues it; infra/generated.py): the CA's and
each service's certificate in plain config (certificates are public), the private keys as
config secrets. Nothing is generated while the program runs, so every `pulumi up` declares
the same Secrets (a CA regenerated per run would replace every one of them).

One CA per stack (EC P-256, 10 years); one leaf per service (397 days, the most a public CA
may issue), named as clients and peers reach it (`service_names`), usable as a server and as
a client certificate (replication, brokers and controllers authenticate with it). The
helper re-issues a leaf whose names no longer match the stack, that another CA signed, or
that expires within RENEW_DAYS; the program refuses to deploy a leaf that does not name
what the stack needs.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 397
RENEW_DAYS = 30
SERVICES = ("timescale", "redis", "kafka")
# The leaf's common name; Kafka maps the brokers' certificate to the principal User:<CN>.
COMMON_NAMES = {"timescale": "timescale", "redis": "redis", "kafka": "kafka"}


@dataclass(frozen=True)
class Pem:
    cert: str
    key: str


def service_names(service: str, platform: str, namespace: str) -> list[str]:
    """The host names and addresses a service's certificate must carry on a platform.

    kubernetes: the client Services and, through a wildcard, every pod of the headless
    Service (`<pod>.<svc>-headless.<ns>.svc.cluster.local`: members reach each other so).
    docker: 127.0.0.1 (the published port), the container's name and network alias.
    Both: localhost, for probes run inside the container."""
    if service not in SERVICES:
        raise KeyError(service)
    local = ["localhost", "127.0.0.1"]
    if platform == "docker":
        return [f"{namespace}-{service}", service, *local]
    cluster = f"{namespace}.svc.cluster.local"
    names = {"timescale": ["timescale", "timescale-replica", "timescale-headless"],
             "redis": ["redis", "redis-headless", "redis-sentinel", "redis-sentinel-headless"],
             "kafka": ["kafka", "kafka-headless"]}[service]
    out = [f"{name}.{cluster}" for name in names]
    out += [f"*.{name}.{cluster}" for name in names if name.endswith("-headless")]
    return out + local


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_ca(stack: str, now: dt.datetime | None = None) -> Pem:
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"backbone {stack} CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def issue(ca: Pem, service: str, names: list[str], now: dt.datetime | None = None) -> Pem:
    """A server-and-client leaf for `service`, signed by `ca`, valid for `names`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    ca_key = serialization.load_pem_private_key(ca.key.encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAMES[service])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def names_of(cert_pem: str) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


def problem(cert_pem: str, ca_pem: str, names: list[str], now: dt.datetime | None = None,
            renew_days: int = 0) -> str | None:
    """Why `cert_pem` does not serve `names` under `ca_pem` (None when it does)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
    except ValueError:
        return "is not a PEM certificate"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
        return "is not signed by the stack's CA (tls_ca_pem)"
    missing = sorted(set(names) - names_of(cert_pem))
    if missing:
        return f"does not name {', '.join(missing)}"
    if cert.not_valid_after_utc - now < dt.timedelta(days=renew_days):
        return f"expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def key_matches(cert_pem: str, key_pem: str) -> bool:
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), None)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except (ValueError, TypeError):
        return False
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return (key.public_key().public_bytes(serialization.Encoding.PEM, pub)
            == cert.public_key().public_bytes(serialization.Encoding.PEM, pub))


def material(stack: str, platform: str, namespace: str, present: dict[str, str],
             now: dt.datetime | None = None) -> dict[str, str]:
    """The TLS config values (infra/generated.py's CERTIFICATE_KEYS and PRIVATE_KEY_KEYS) that
    must be set for the stack, given those `present`: everything when there is no CA; else
    the leaves that are missing, were signed by another CA, do not name what the platform and
    namespace need, do not match their key, or expire within RENEW_DAYS. {} when all is well."""
    out: dict[str, str] = {}
    fresh_ca = not (present.get("tls_ca_pem") and present.get("tls_ca_key"))
    if fresh_ca:
        ca = new_ca(stack, now)
        out.update({"tls_ca_pem": ca.cert, "tls_ca_key": ca.key})
    else:
        ca = Pem(present["tls_ca_pem"], present["tls_ca_key"])
    for service in SERVICES:
        names = service_names(service, platform, namespace)
        cert, key = present.get(f"tls_{service}_cert"), present.get(f"tls_{service}_key")
        if (not fresh_ca and cert and key and key_matches(cert, key)
                and problem(cert, ca.cert, names, now, renew_days=RENEW_DAYS) is None):
            continue
        leaf = issue(ca, service, names, now)
        out.update({f"tls_{service}_cert": leaf.cert, f"tls_{service}_key": leaf.key})
    return out
