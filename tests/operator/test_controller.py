"""The controller shell (``reconcile_once`` and ``Controller``) driven directly against the real API server.

No kopf here: the tests call a pass themselves, or poke a :class:`Controller`, as the operator's
ServiceAccount (so RBAC applies), and look at what reached the server. ``RecordingClient`` is the real
kubernetes client that also notes each request it sent and the status the server answered; it fakes
nothing. The hard cases are provoked for real: a 409 by writing the cluster between a pass's read and its
guarded write, rejected creates by a ResourceQuota, and overlapping passes (two operators briefly alive) by
holding two passes after their LIST until both have listed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from spindle_operator import ReconcileSettings
from spindle_operator._controller import Controller, PassResult, reconcile_once
from spindle_operator._kube import Kube, load_configuration

from .conftest import WAIT, Admin, spindle_cluster, wait_for, worker_group
from .factories import SETTINGS

pytestmark = pytest.mark.k8s

Event = tuple[str, str, str]


class RecordingClient(client.ApiClient):
    """The real API client, recording (method, last path segment, HTTP status) of every request."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super().call_api(method, url, *args, **kwargs)
        with self._lock:
            self.requests.append((method, urlsplit(url).path.rsplit("/", 1)[-1], int(response.status)))
        return response

    def writes(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return [r for r in self.requests if r[0] != "GET"]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


@pytest.fixture
def api(operator_kubeconfig: str) -> Iterator[RecordingClient]:
    with RecordingClient(load_configuration(operator_kubeconfig)) as recording:
        yield recording


class Events(list[Event]):
    """An ``emit`` that keeps what the controller would post on the cluster."""

    def __call__(self, cluster: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self]


def run(kube: Kube, admin: Admin, emit: Events | None = None, ensured: set[str] | None = None) -> PassResult:
    return reconcile_once(
        kube, SETTINGS, admin.ns, "c", emit=Events() if emit is None else emit, secrets_ensured=ensured
    )


async def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    """Await ``check()`` with backoff, letting the controller's tasks run meanwhile."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.3)


def create_pod_quota(admin: Admin, pods: int) -> None:
    """A ResourceQuota on pods, once the quota controller has published it (admission enforces status)."""
    quota = {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(pods)}}}
    admin.core.create_namespaced_resource_quota(admin.ns, quota)

    def published() -> bool:
        hard = admin.core.read_namespaced_resource_quota("pods", admin.ns).status.hard or {}
        return bool(hard.get("pods") == str(pods))

    wait_for(published, f"a pod quota of {pods}")


def test_a_first_pass_creates_secret_service_head_and_workers_and_the_next_creates_nothing(
    admin: Admin, api: RecordingClient
):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    kube, events, ensured = Kube(api), Events(), set[str]()
    assert run(kube, admin, events, ensured).exists
    assert events.reasons() == [
        "CreatedSecret",
        "CreatedService",
        "CreatedHeadPod",
        "CreatedWorkerPod",
        "CreatedWorkerPod",
    ]
    assert api.writes() == [
        ("POST", "secrets", 201),
        ("POST", "services", 201),
        ("POST", "pods", 201),
        ("POST", "pods", 201),
        ("POST", "pods", 201),
        ("PATCH", "status", 200),
    ]
    assert admin.status()["state"] == "Pending"
    heads, workers = admin.wait_pods(1, 2, timeout=0)

    api.clear()
    events.clear()
    assert run(kube, admin, events, ensured).exists
    assert events == []
    assert [w for w in api.writes() if w[0] != "PATCH"] == []  # at most the status, now that pods are seen
    assert admin.wait_pods(1, 2, timeout=0) == (heads, workers)


def test_status_reaches_ready_with_the_pods_and_is_not_rewritten_while_unchanged(admin: Admin, api: RecordingClient):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    kube, ensured = Kube(api), set[str]()
    run(kube, admin, ensured=ensured)
    admin.make_all_ready()
    api.clear()
    run(kube, admin, ensured=ensured)
    assert admin.status()["state"] == "Ready"
    assert api.writes() == [("PATCH", "status", 200)]
    api.clear()
    run(kube, admin, ensured=ensured)
    assert api.writes() == []


def test_a_missing_or_deleting_cluster_ends_the_pass_without_writing(admin: Admin, api: RecordingClient):
    kube = Kube(api)
    assert run(kube, admin) == PassResult(exists=False)
    body = spindle_cluster(worker_group(replicas=1))
    body["metadata"]["finalizers"] = ["test.spindle.dev/hold"]  # keeps it in Terminating
    admin.create_cluster(body)
    try:
        admin.custom.delete_namespaced_custom_object("spindle.dev", "v1alpha1", admin.ns, "spindleclusters", "c")
        assert admin.cluster()["metadata"]["deletionTimestamp"]
        api.clear()
        assert run(kube, admin) == PassResult(exists=False)
        assert api.writes() == []
        assert admin.pods() == []
    finally:
        admin.patch_cluster({"metadata": {"finalizers": None}})


def test_the_controller_coalesces_pokes_and_retires_the_worker_of_a_deleted_cluster(admin: Admin, api: RecordingClient):
    admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
    settings = dataclasses.replace(SETTINGS, reconcile=ReconcileSettings(resync_seconds=60))
    controller = Controller(settings)
    controller._kube = Kube(api)
    key = (admin.ns, "c")

    def passes() -> int:  # every pass starts with a GET of the cluster
        return sum(1 for method, last, _ in list(api.requests) if (method, last) == ("GET", "c"))

    async def scenario() -> None:
        try:
            for _ in range(6):
                controller.poke(*key)
            await eventually(lambda: ("PATCH", "status", 200) in api.writes(), "a status write")
            await eventually(lambda: not controller._wakeups[key].is_set(), "the pokes consumed")
            # Six pokes while at most one pass ran: one pass plus at most one coalesced re-run.
            assert 1 <= passes() <= 2
            assert controller.active() == {f"{admin.ns}/c": True}
            admin.custom.delete_namespaced_custom_object("spindle.dev", "v1alpha1", admin.ns, "spindleclusters", "c")
            controller.poke(*key)
            await eventually(lambda: controller.active() == {}, "the worker retired")
        finally:
            await controller.stop()

    asyncio.run(scenario())


def test_a_conflict_on_the_guarded_workers_to_delete_clear_is_retried_with_a_fresh_read(
    admin: Admin, api: RecordingClient
):
    admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
    kube = Kube(api)
    run(kube, admin)
    [listed] = admin.wait_pods(1, 1, timeout=0)[1]
    admin.patch_group(0, scaleStrategy={"workersToDelete": [listed.metadata.name]})

    events = Events()
    bumped = threading.Event()

    def emit(cluster: dict[str, Any], type_: str, reason: str, message: str) -> None:
        events(cluster, type_, reason, message)
        if reason == "WorkersToDelete" and not bumped.is_set():
            # Someone else writes the cluster after this pass read it: its resourceVersion is now stale.
            admin.patch_cluster({"metadata": {"annotations": {"test.spindle.dev/bump": "1"}}})
            bumped.set()

    controller = Controller(SETTINGS, emit=emit)
    controller._kube = kube
    api.clear()

    def cleared() -> bool:
        return bool(admin.cluster()["spec"]["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == [])

    async def scenario() -> None:
        try:
            controller.poke(admin.ns, "c")
            await eventually(cleared, "workersToDelete cleared")
        finally:
            await controller.stop()

    asyncio.run(scenario())
    cluster_patches = [status for method, last, status in api.writes() if (method, last) == ("PATCH", "c")]
    assert cluster_patches == [409, 200]
    _, [worker] = admin.wait_pods(1, 1, timeout=0)
    assert worker.metadata.name != listed.metadata.name
    assert events.reasons().count("WorkersToDelete") == 1
    assert events.reasons().count("CreatedWorkerPod") == 1


def test_a_rejected_create_is_reported_and_retried_with_backoff_not_only_at_the_next_resync(
    admin: Admin, api: RecordingClient
):
    create_pod_quota(admin, 1)  # room for the head only
    admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
    settings = dataclasses.replace(
        SETTINGS,
        reconcile=ReconcileSettings(resync_seconds=3600, error_backoff_initial=0.05, error_backoff_max=0.5),
    )
    events = Events()
    controller = Controller(settings, emit=events)
    controller._kube = Kube(api)

    async def scenario() -> None:
        try:
            controller.poke(admin.ns, "c")
            await eventually(lambda: admin.status().get("state") == "Failed", "the quota failure reported")
            status = admin.status()
            assert "exceeded quota" in status["reason"]
            assert {c["type"]: c["status"] for c in status["conditions"]}["ReplicaFailure"] == "True"
            assert ("Warning", "FailedCreatePod") in [(t, r) for t, r, _ in events]
            # The quota is raised; nothing pokes this controller (it has no watch), only its backoff retries.
            admin.core.patch_namespaced_resource_quota("pods", admin.ns, {"spec": {"hard": {"pods": "10"}}})
            await eventually(
                lambda: admin.status().get("state") == "Pending" and len(admin.pods()) == 2,
                "the worker created after the quota was raised",
            )
        finally:
            await controller.stop()

    asyncio.run(scenario())


class ListThenWait(Kube):
    """The real client; each pass waits after its LIST until the other pass has listed too."""

    def __init__(self, api: client.ApiClient, barrier: threading.Barrier) -> None:
        super().__init__(api)
        self.barrier = barrier

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        pods = super().list_pods(namespace, label_selector)
        self.barrier.wait(WAIT)
        return pods


def test_overlapping_passes_create_fixed_names_once_and_the_next_pass_removes_duplicate_pods(
    admin: Admin, api: RecordingClient
):
    # Two operators briefly alive (a rollout of the operator's Deployment): both observe an empty cluster.
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    overlapping = ListThenWait(api, threading.Barrier(2))
    passes = [Events(), Events()]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda events: run(overlapping, admin, events, set()), passes))
    assert all(r.exists for r in results)
    both = passes[0].reasons() + passes[1].reasons()
    # The service and the secret have fixed names: the loser's 409 means "already there", silently.
    assert both.count("CreatedService") == 1 and both.count("CreatedSecret") == 1
    assert len(admin.core.list_namespaced_service(admin.ns).items) == 1
    assert len(admin.core.list_namespaced_secret(admin.ns, field_selector="metadata.name=c-spindle-token").items) == 1
    # Pods use generateName, so both passes' pods exist, all distinctly named.
    heads, workers = admin.wait_pods(2, 4, timeout=0)
    assert len({p.metadata.name for p in heads + workers}) == 6

    kube, events, ensured = Kube(api), Events(), set[str]()  # the operator that stays
    run(kube, admin, events, ensured)
    assert sorted(events.reasons()) == ["DuplicateHeadPod", "ScaleDown", "ScaleDown"]
    admin.wait_pods(1, 2, timeout=0)
    run(kube, admin, ensured=ensured)  # the status catches up with the removals
    api.clear()
    events.clear()
    run(kube, admin, events, ensured)
    assert events == [] and api.writes() == []
