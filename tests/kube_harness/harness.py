"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager.

The operator's tests need the API server's actual behaviour (RBAC denials, admission, the status
subresource, garbage collection through ownerReferences), which fakes get subtly wrong. There is no
kubelet and no scheduler: pods stay Pending until a test writes their status, as KubeRay's envtest
suite does. ``running_cluster`` starts the three servers on loopback with a fresh PKI in a temp dir
and always stops them; ``KubeAPI`` is the handle tests get (kubeconfigs, kubectl, API clients).
Binaries come from ``scripts/build-k8s.sh``, which caches them per Kubernetes version.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from . import _servers
from ._pki import CertPair, Pki, generate
from ._process import StartupError, start_retrying

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-k8s.sh"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
KUBECTL_TIMEOUT = 120.0
# kubernetes.config is untyped; one typed name keeps mypy --strict quiet about calling it.
_load_kube_config: Callable[..., object] = config.load_kube_config


class BinariesMissing(RuntimeError):
    """The Kubernetes binaries are not built yet."""


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl (or helm) call whose message shows what kubectl printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def bin_dir() -> Path:
    """The directory holding the binaries: $SPINDLE_K8S_BIN_DIR, else what the build script says."""
    override = os.environ.get("SPINDLE_K8S_BIN_DIR")
    if override:
        return Path(override)
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-bin-dir"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return Path(out.stdout.strip())


def check_binaries(directory: Path) -> None:
    missing = [b for b in REQUIRED_BINARIES if not os.access(directory / b, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"Kubernetes test binaries missing from {directory}: {', '.join(missing)}. "
            f"Build them with `{BUILD_SCRIPT.relative_to(REPO_ROOT)}` "
            "(scripts/test.sh does so before running the suite)."
        )


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    ca: Path,
    user: str,
    *,
    cert: CertPair | None = None,
    token: str | None = None,
) -> Path:
    """A self-contained kubeconfig (certificates embedded) for one user."""
    credentials: dict[str, str] = {}
    if cert is not None:
        credentials["client-certificate-data"] = _b64(cert.cert)
        credentials["client-key-data"] = _b64(cert.key)
    if token is not None:
        credentials["token"] = token
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "spindle-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "spindle-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


class KubeAPI:
    """Handle on a running control plane."""

    def __init__(self, server: str, pki: Pki, root: Path, binaries: Path) -> None:
        self.server = server
        self.root = root
        self.bin_dir = binaries
        self._pki = pki
        self._kubeconfigs = root / "kubeconfigs"
        self._kubeconfigs.mkdir(exist_ok=True)
        self.admin_kubeconfig = str(
            write_kubeconfig(
                self._kubeconfigs / "admin.yaml",
                server,
                pki.ca.cert,
                "admin",
                cert=pki.admin,
            )
        )

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def api_client(self, kubeconfig: str | None = None) -> client.ApiClient:
        configuration = client.Configuration()
        _load_kube_config(
            config_file=kubeconfig or self.admin_kubeconfig,
            client_configuration=configuration,
            persist_config=False,
        )
        return client.ApiClient(configuration)

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | None = None,
        check: bool = True,
        input: str | None = None,  # the name subprocess.run uses
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin, or as whoever ``kubeconfig`` names."""
        return self._run("kubectl", args, kubeconfig, check, input)

    def helm(
        self,
        *args: str,
        kubeconfig: str | None = None,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm (built unless SKIP_HELM=1) with its caches and config inside the session dir."""
        helm_home = self.root / "helm"
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        return self._run("helm", args, kubeconfig, check, input, env)

    def _run(
        self,
        binary: str,
        args: tuple[str, ...],
        kubeconfig: str | None,
        check: bool,
        stdin: str | None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        path = self.bin_dir / binary
        if not os.access(path, os.X_OK):
            raise BinariesMissing(f"{path} is missing; build it with `scripts/build-k8s.sh`")
        argv = [str(path), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            input=stdin,
            env=env,
            timeout=KUBECTL_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def service_account_kubeconfig(self, namespace: str, name: str) -> str:
        """Create the ServiceAccount if needed and return a kubeconfig holding a fresh token of it
        (valid 24 h, so a session-scoped kubeconfig outlives any test run)."""
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            try:
                core.create_namespaced_service_account(
                    namespace,
                    client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)),
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)
            )
            token = core.create_namespaced_service_account_token(name, namespace, request)
        if token.status is None:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        user = f"system:serviceaccount:{namespace}:{name}"
        path = self._kubeconfigs / f"sa-{namespace}-{name}.yaml"
        write_kubeconfig(path, self.server, self._pki.ca.cert, user, token=token.status.token)
        return str(path)


@contextmanager
def running_cluster(root: Path, binaries: Path | None = None) -> Iterator[KubeAPI]:
    """Start etcd, kube-apiserver and kube-controller-manager under ``root``; stop them on exit."""
    binaries = binaries or bin_dir()
    check_binaries(binaries)
    layout = _servers.Layout(root)
    layout.logs.mkdir(parents=True, exist_ok=True)
    pki = generate(layout.pki, _servers.SERVICE_IP)
    with ExitStack() as stack:
        etcd, etcd_url = start_retrying(lambda: _servers.start_etcd(binaries, layout))
        stack.callback(etcd.stop)
        apiserver, server = start_retrying(lambda: _servers.start_apiserver(binaries, layout, pki, etcd_url))
        stack.callback(apiserver.stop)
        kcm_kubeconfig = write_kubeconfig(
            root / "controller-manager.kubeconfig",
            server,
            pki.ca.cert,
            "kcm",
            cert=pki.controller_manager,
        )
        kcm = start_retrying(lambda: _servers.start_controller_manager(binaries, layout, pki, kcm_kubeconfig))
        stack.callback(kcm.stop)
        yield KubeAPI(server, pki, root, binaries)


__all__ = [
    "BinariesMissing",
    "KubeAPI",
    "KubectlError",
    "StartupError",
    "bin_dir",
    "running_cluster",
]
