"""The local API-only cluster itself (backbone/local/kubernetes.py): the version it reports,
who it lets in, and where its keys are."""
from __future__ import annotations

import ssl
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from backbone.serviceconfig import KUBERNETES_VERSION

pytestmark = pytest.mark.timeout(300)


def test_the_api_server_reports_the_pinned_release(cluster):
    version = cluster.get("/version")
    assert version["gitVersion"] == KUBERNETES_VERSION
    assert (version["major"], version["minor"]) == ("1", KUBERNETES_VERSION.split(".")[1])


def test_a_client_without_the_admin_certificate_is_refused(cluster):
    context = ssl.create_default_context(cafile=str(cluster.home / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(cluster.server + "/api/v1/namespaces", context=context, timeout=10)
    assert refused.value.code == 401


def test_the_server_certificate_is_verified_against_the_clusters_own_ca(cluster):
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(cluster.server + "/version", context=ssl.create_default_context(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_keys_and_the_kubeconfig_are_private_and_never_arguments(cluster):
    private = [cluster.kubeconfig, *sorted((cluster.home / "pki").glob("*.key"))]
    assert len(private) == 5
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for name, started in cluster.started.items():
        argv = Path(f"/proc/{started.pid}/cmdline").read_bytes()
        assert b"PRIVATE KEY" not in argv and b"BEGIN" not in argv, name


def test_the_controllers_run(cluster):
    # the service-account controller's work, which start_cluster waited for
    assert cluster.get("/api/v1/namespaces/default/serviceaccounts/default")["metadata"]["name"] == "default"
    # the root-CA publisher's: every namespace gets the cluster's CA
    ca = cluster.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")["data"]["ca.crt"]
    assert ca == (cluster.home / "pki" / "ca.crt").read_text()
