"""Fixtures for the operator's API-server tests: CRDs and RBAC applied from manifests/, the operator run
in-process as the ServiceAccount that manifests/rbac binds, and a small admin-side toolkit that plays the
kubelet (there is none) by writing pod status through the status subresource."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from spindle_operator import OperatorSettings, ReconcileSettings, WatchSettings, operate
from spindle_operator._settings import AutoscalerSettings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
GROUP, VERSION, PLURAL = "spindle.dev", "v1alpha1", "spindleclusters"
WAIT = 30.0


@pytest.fixture(scope="session")
def operator_kubeconfig(kube_api: Any) -> str:
    """Apply CRDs, RBAC and the operator's namespace + ServiceAccount exactly as shipped; return a kubeconfig
    holding a token of that ServiceAccount."""
    kube_api.kubectl(
        "apply",
        "-f", str(MANIFESTS / "crds"),
        "-f", str(MANIFESTS / "rbac"),
        "-f", str(MANIFESTS / "operator/00-namespace.yaml"),
        "-f", str(MANIFESTS / "operator/serviceaccount.yaml"),
    )  # fmt: skip
    kube_api.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/spindleclusters.spindle.dev",
                     "crd/spindlejobs.spindle.dev")
    path: str = kube_api.service_account_kubeconfig("spindle-system", "spindle-operator")
    return path


class OperatorThread:
    """The operator running in a thread of the test process, so its tracebacks show in the test output."""

    def __init__(self, namespace: str, kubeconfig: str, autoscaler: AutoscalerSettings | None = None) -> None:
        self.settings = OperatorSettings(
            reconcile=ReconcileSettings(resync_seconds=5.0, error_backoff_initial=0.2, error_backoff_max=2.0),
            watch=WatchSettings(namespaces=(namespace,), clusterwide=False, kubeconfig=kubeconfig),
            autoscaler=autoscaler or AutoscalerSettings(),
        )
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="spindle-operator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(operate(self.settings, stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as exc:  # noqa: BLE001  (surfaced by stop())
            self.error = exc

    def start(self) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise TimeoutError("the operator did not become ready")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the operator did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def operator(kube_namespace: str, operator_kubeconfig: str) -> Iterator[OperatorThread]:
    op = OperatorThread(kube_namespace, operator_kubeconfig).start()
    yield op
    op.stop()


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    from tests.kube_harness import wait_for as harness_wait_for

    return harness_wait_for(check, timeout, what, first_delay=0.05, max_delay=0.5)


class Admin:
    """What a user (kubectl) and the missing kubelet do, as cluster admin."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        # Any: the tests read optional model fields freely; a None there is a test failure anyway.
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self._ips = iter(range(2, 250))

    # --- the SpindleCluster -------------------------------------------------------------------------
    def create_cluster(self, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body.setdefault("apiVersion", f"{GROUP}/{VERSION}")
        body.setdefault("kind", "SpindleCluster")
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        return result

    def cluster(self, name: str = "c") -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
        return result

    def patch_cluster(self, patch: dict[str, Any], name: str = "c") -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, patch)

    def patch_group(self, index: int, name: str = "c", **fields: Any) -> None:
        groups = self.cluster(name)["spec"]["workerGroupSpecs"]
        groups[index].update(fields)
        self.patch_cluster({"spec": {"workerGroupSpecs": groups}}, name)

    def status(self, name: str = "c") -> dict[str, Any]:
        return self.cluster(name).get("status") or {}

    def events(self, name: str = "c") -> list[tuple[str, str, str]]:
        items = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return [(e.type, e.reason, e.message) for e in items]

    def wait_events(self, *reasons: str, name: str = "c") -> list[tuple[str, str, str]]:
        """The cluster's events once all ``reasons`` are among them (kopf posts events asynchronously)."""

        def posted() -> list[tuple[str, str, str]] | None:
            events = self.events(name)
            return events if set(reasons) <= {reason for _, reason, _ in events} else None

        found: list[tuple[str, str, str]] = wait_for(posted, f"events {', '.join(reasons)}")
        return found

    # --- pods -----------------------------------------------------------------------------------------
    def pods(self, node_type: str | None = None, group: str | None = None, name: str = "c") -> list[Any]:
        selector = f"spindle.dev/cluster={name}"
        if node_type:
            selector += f",spindle.dev/node-type={node_type}"
        if group:
            selector += f",spindle.dev/group={group}"
        items = self.core.list_namespaced_pod(self.ns, label_selector=selector).items
        live = [p for p in items if p.metadata.deletion_timestamp is None]
        return sorted(live, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))

    def wait_pods(self, head: int, workers: int, name: str = "c", timeout: float = WAIT) -> tuple[list[Any], list[Any]]:
        def check() -> tuple[list[Any], list[Any]] | None:
            h, w = self.pods("head", name=name), self.pods("worker", name=name)
            return (h, w) if (len(h), len(w)) == (head, workers) else None

        result: tuple[list[Any], list[Any]] = wait_for(check, f"{head} head and {workers} worker pods", timeout)
        return result

    def set_phase(self, pod: Any, phase: str, ready: bool) -> None:
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        if phase == "Running":
            ip = f"10.244.0.{next(self._ips)}"
            status.update(podIP=ip, podIPs=[{"ip": ip}])
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.ns, {"status": status})

    def make_ready(self, *pods: Any) -> None:
        for pod in pods:
            if not (pod.status and pod.status.phase == "Running"):
                self.set_phase(pod, "Running", True)

    def make_all_ready(self, name: str = "c") -> None:
        self.make_ready(*self.pods(name=name))

    def delete_pod(self, pod: Any) -> None:
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, self.ns)
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def admin(kube_api: Any, kube_namespace: str) -> Iterator[Admin]:
    with kube_api.api_client() as api:
        yield Admin(api, kube_namespace)


def container(image: str = "spindle:test") -> dict[str, Any]:
    return {"name": "spindle", "image": image}


def spindle_cluster(*groups: dict[str, Any], name: str = "c", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "headGroupSpec": {"template": {"spec": {"containers": [container()]}}},
            "workerGroupSpecs": list(groups),
            **spec,
        },
    }


def worker_group(name: str = "workers", replicas: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": 0,
        "maxReplicas": 10,
        "template": {"spec": {"containers": [container()]}},
        **extra,
    }
