"""An API-only Kubernetes cluster on loopback: etcd, kube-apiserver and kube-controller-manager.

What the real-engine deploy tests (tests/deploy) and `python -m infra.deploy` talk to. The API
server admits, validates (schemas, Pod Security, RBAC) and stores objects; the controller
manager runs the controllers that need no node: garbage collection (foreground deletes
finish), namespaces (a deleted namespace empties and goes), service accounts, StatefulSets
(they create their pods and claims, so Pod Security is applied to real pods). There is no
scheduler and no kubelet: pods are admitted but never run.

Security: TLS with a CA made here, a client certificate in `system:masters` for the
kubeconfig, RBAC authorization; keys and the kubeconfig are 0600 files in the cluster's own
directory, never process arguments. Processes are stopped by pid (processes.py).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .. import serviceconfig as sc
from ..errors import BackboneError
from . import processes
from .binaries import KubeBinaries
from .services import free_port

SERVICE_CIDR = "10.96.0.0/16"  # allocation bookkeeping only: nothing routes to it
ADMIN = "backbone-admin"


class ClusterError(BackboneError, RuntimeError):
    """The cluster did not come up; the message names the process and quotes its log."""


@dataclass
class KubeCluster:
    home: Path
    server: str
    kubeconfig: Path
    started: dict[str, processes.Started] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def get(self, path: str, timeout_s: float = 10) -> dict:
        """GET an API path as the admin; the parsed JSON body."""
        request = urllib.request.Request(self.server + path, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, context=self._tls(), timeout=timeout_s) as answer:
            return json.loads(answer.read())

    def _tls(self) -> ssl.SSLContext:
        pki = self.home / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def stop(self) -> None:
        # The controllers and the API server first, together; etcd, which they write to, last.
        front = [name for name in self.started if name != "etcd"]
        processes.stop_all([(self.started[n].pid, self.started[n].start_ticks, 15) for n in front], grace_s=20)
        if "etcd" in self.started:
            processes.stop(self.started["etcd"].pid, self.started["etcd"].start_ticks, grace_s=20)
        self.started.clear()


def start_cluster(home: Path, bins: KubeBinaries, timeout_s: float = 120) -> KubeCluster:
    """Start the cluster under `home` (created; a fresh etcd data dir) and wait until it
    serves and its controllers work. Stops what it started when any part fails."""
    missing = bins.missing()
    if missing:
        raise ClusterError(f"cannot start the local Kubernetes API server: missing {', '.join(missing)} "
                           f"({bins.hint})")
    home.mkdir(parents=True, exist_ok=True)
    pki = _make_pki(home / "pki")
    port = free_port()
    cluster = KubeCluster(home=home, server=f"https://127.0.0.1:{port}", kubeconfig=home / "kubeconfig")
    _write_kubeconfig(cluster.kubeconfig, cluster.server, pki)
    logs = home / "logs"
    try:
        etcd_port = free_port()
        _start(cluster, "etcd", [str(bins.etcd), *sc.etcd_args("kube-etcd", "127.0.0.1", etcd_port, free_port(),
                                                               str(home / "etcd"))], logs)
        _start(cluster, "kube-apiserver", _apiserver_args(bins, port, etcd_port, pki), logs)
        _wait(cluster, "kube-apiserver", lambda: _ready(cluster), timeout_s)
        _start(cluster, "kube-controller-manager", _controller_manager_args(bins, cluster.kubeconfig, pki), logs)
        # The service-account controller gives every namespace its `default` account: proof the
        # controllers run (and pods in a new namespace need it to be admitted).
        _wait(cluster, "kube-controller-manager",
              lambda: bool(_get_or_none(cluster, "/api/v1/namespaces/default/serviceaccounts/default")), timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(cluster: KubeCluster, name: str, argv: list[str], logs: Path) -> None:
    cluster.logs[name] = logs / f"{name}.log"
    cluster.started[name] = processes.spawn(argv, cluster.logs[name])


def _ready(cluster: KubeCluster) -> bool:
    try:
        request = urllib.request.Request(cluster.server + "/readyz")
        with urllib.request.urlopen(request, context=cluster._tls(), timeout=5) as answer:
            return answer.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _get_or_none(cluster: KubeCluster, path: str) -> dict | None:
    try:
        return cluster.get(path)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _wait(cluster: KubeCluster, name: str, ready, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc, started in cluster.started.items():
            if not processes.is_ours(started.pid, started.start_ticks):
                raise ClusterError(f"{proc} exited while the local Kubernetes cluster started; its log ends:\n"
                                   f"{processes.tail(cluster.logs[proc])}")
        if ready():
            return
        time.sleep(0.5)
    raise ClusterError(f"{name} was not ready within {timeout_s:.0f} s; its log ends:\n"
                       f"{processes.tail(cluster.logs[name])}")


def _apiserver_args(bins: KubeBinaries, port: int, etcd_port: int, pki: Path) -> list[str]:
    return [
        str(bins.apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        # The `kubernetes` Service's endpoints would be this loopback address, which the
        # Endpoints validation refuses: nothing needs them without pods that run.
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=RBAC", "--anonymous-auth=false",
        f"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # one client and a few objects: no need for request fairness queues
        "--enable-priority-and-fairness=false",
    ]


def _controller_manager_args(bins: KubeBinaries, kubeconfig: Path, pki: Path) -> list[str]:
    return [
        str(bins.controller_manager),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
        f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--controllers=*",
    ]


def _write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "backbone-local",
        "clusters": [{"name": "backbone-local", "cluster": {"server": server,
                                                            "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": ADMIN, "user": {"client-certificate": str(pki / "admin.crt"),
                                           "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "backbone-local", "context": {"cluster": "backbone-local", "user": ADMIN}}],
    }
    _write_private(path, json.dumps(config, indent=2).encode())  # JSON is YAML: kubeconfig readers take it


def _make_pki(pki: Path) -> Path:
    """A CA, the API server's serving certificate, the admin's client certificate and the
    service-account signing key pair (cryptography; EC P-256 keys)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def name(common: str, org: str | None = None) -> x509.Name:
        parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        return x509.Name(parts + ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []))

    def save_key(key, stem: str) -> None:
        _write_private(pki / f"{stem}.key", key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))

    def certificate(subject, key, issuer, issuer_key, ca: bool, extensions=()):
        # the extensions strict verifiers (Python's default context since 3.13) ask for
        usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                               "encipher_only", "decipher_only"), False)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, **usage),
                                  critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("backbone-local-ca")
    ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    save_key(ca_key, "ca")
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    hosts = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"]
    alt = x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]
                                      + [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.IPAddress(ipaddress.ip_network(SERVICE_CIDR)[1])])
    server = certificate(name("kube-apiserver"), server_key, ca_name, ca_key, ca=False,
                         extensions=[alt, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    save_key(server_key, "apiserver")
    (pki / "apiserver.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = certificate(name(ADMIN, "system:masters"), admin_key, ca_name, ca_key, ca=False,
                        extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
    save_key(admin_key, "admin")
    (pki / "admin.crt").write_bytes(admin.public_bytes(serialization.Encoding.PEM))

    sa_key = ec.generate_private_key(ec.SECP256R1())
    save_key(sa_key, "sa")
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki


def _write_private(path: Path, content: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(content)
