"""Command lines and readiness probes of etcd, kube-apiserver and kube-controller-manager.

The flags are the smallest set that gives a control plane behaving like a real cluster minus nodes:
RBAC authorization, client-certificate authentication, service-account tokens (TokenRequest), the
ServiceAccount admission plugin, and a controller manager running the garbage collector, namespace
and service-account controllers (plus the rest of the default set). Everything binds 127.0.0.1 on
free ports; etcd skips fsync since its data dir is thrown away.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._pki import Pki
from ._process import Process, free_port

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the kubernetes.default Service, first address of SERVICE_CIDR
ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 180.0  # two shared cores: a cold apiserver can take a minute to install its APIs


@dataclass(frozen=True)
class Layout:
    """Where one session's files live."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pki(self) -> Path:
        return self.root / "pki"


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return int(response.status), bytes(response.read())


def start_etcd(bin_dir: Path, layout: Layout) -> tuple[Process, str]:
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    argv = [
        str(bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={layout.root / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]
    proc = Process("etcd", argv, layout.logs / "etcd.log")

    def healthy() -> bool:
        status, body = _get(f"{client_url}/health")
        return status == 200 and json.loads(body).get("health") == "true"

    proc.wait_until(healthy, START_TIMEOUT, "healthy")
    return proc, client_url


def admin_ssl_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return context


def start_apiserver(bin_dir: Path, layout: Layout, pki: Pki, etcd_url: str) -> tuple[Process, str]:
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    argv = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={layout.root / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving.cert}",
        f"--tls-private-key-file={pki.serving.key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--requestheader-client-ca-file={pki.ca.cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy.cert}",
        f"--proxy-client-key-file={pki.front_proxy.key}",
        "--authorization-mode=RBAC",
        "--anonymous-auth=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={pki.service_account_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]
    proc = Process("kube-apiserver", argv, layout.logs / "kube-apiserver.log")
    context = admin_ssl_context(pki)

    def ready() -> bool:
        try:
            return _get(f"{server}/readyz", context)[0] == 200
        except urllib.error.HTTPError:  # 500 while post-start hooks are still running
            return False

    proc.wait_until(ready, START_TIMEOUT, "ready (/readyz)")
    return proc, server


def start_controller_manager(bin_dir: Path, layout: Layout, pki: Pki, kubeconfig: Path) -> Process:
    port = free_port()
    argv = [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={layout.root / 'kcm-certs'}",
        "--leader-elect=false",
        "--controllers=*",  # includes garbage-collector, namespace, serviceaccount(-token)
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
        "--v=1",
    ]
    proc = Process("kube-controller-manager", argv, layout.logs / "kube-controller-manager.log")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed in --cert-dir

    def healthy() -> bool:
        try:
            return _get(f"https://127.0.0.1:{port}/healthz", insecure)[0] == 200
        except urllib.error.HTTPError:
            return False

    proc.wait_until(healthy, START_TIMEOUT, "healthy (/healthz)")
    return proc
