"""The I/O shell around the pure reconcile, driven against an in-memory API (no server)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

from spindle_operator._controller import Controller, reconcile_once
from spindle_operator._kube import ApiError
from spindle_operator._settings import ReconcileSettings

from .factories import NS, SETTINGS, cluster, group


class FakeKube:
    """Just enough of the API server's behaviour: generateName, 409 on duplicates, uid preconditions."""

    def __init__(self, *clusters: dict[str, Any]) -> None:
        self.clusters = {c["metadata"]["name"]: copy.deepcopy(c) for c in clusters}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.calls: list[tuple[str, str]] = []
        self.reject_pods: str | None = None

    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", "spindlecluster"))
        return copy.deepcopy(self.clusters.get(name))

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        key, value = label_selector.split("=")
        return [
            copy.deepcopy(o)
            for (k, _), o in sorted(self.objects.items())
            if k == "Pod" and o["metadata"]["labels"].get(key) == value
        ]

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get(("Service", name)))

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append(("create", body["kind"]))
        if body["kind"] == "Pod" and self.reject_pods:
            raise ApiError(403, "Forbidden", self.reject_pods)
        obj = copy.deepcopy(body)
        n = next(self.ids)
        meta = obj["metadata"]
        meta["name"] = meta.get("name") or f"{meta.pop('generateName')}{n:05d}"
        if (body["kind"], meta["name"]) in self.objects:
            return None
        meta.update(uid=f"uid-{n}", creationTimestamp=f"2026-01-01T00:00:{n:02d}Z")
        if body["kind"] == "Pod":
            obj["status"] = {"phase": "Pending"}
        self.objects[(body["kind"], meta["name"])] = obj
        return obj

    def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.objects[("Service", name)]["spec"].update(patch["spec"])

    def delete_pod(self, namespace: str, name: str, uid: str) -> bool:
        self.calls.append(("delete", "Pod"))
        pod = self.objects.get(("Pod", name))
        if pod is None or pod["metadata"]["uid"] != uid:
            return False
        del self.objects[("Pod", name)]
        return True

    def patch_cluster(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        c = self.clusters[name]
        if patch["metadata"]["resourceVersion"] != c["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        c["spec"].update(patch["spec"])

    def patch_cluster_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("patch", "status"))
        self.clusters[name]["status"] = {k: v for k, v in status.items()}

    def set_ready(self) -> None:
        for (kind, _), obj in self.objects.items():
            if kind == "Pod":
                obj["status"] = {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "podIP": "10.0.0.1",
                }


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Await ``check()`` with backoff; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


def run(kube: FakeKube, events: list | None = None) -> bool:
    def emit(c: dict, type_: str, reason: str, message: str) -> None:
        if events is not None:
            events.append((type_, reason))

    result = reconcile_once(kube, SETTINGS, NS, "c", emit=emit, secrets_ensured=set())  # type: ignore[arg-type]
    return result.exists


def test_a_pass_creates_everything_and_the_next_pass_only_reads():
    kube = FakeKube(cluster(group(replicas=2)))
    events: list = []
    assert run(kube, events)
    assert [c for c in kube.calls if c[0] == "create"] == [
        ("create", "Secret"),
        ("create", "Service"),
        ("create", "Pod"),
        ("create", "Pod"),
        ("create", "Pod"),
    ]
    assert events == [
        ("Normal", "CreatedSecret"),
        ("Normal", "CreatedService"),
        ("Normal", "CreatedHeadPod"),
        ("Normal", "CreatedWorkerPod"),
        ("Normal", "CreatedWorkerPod"),
    ]
    assert kube.clusters["c"]["status"]["state"] == "Pending"
    kube.calls.clear()
    assert run(kube)
    assert [c for c in kube.calls if c[0] in ("create", "delete")] == [("create", "Secret")]


def test_status_reaches_ready_once_pods_are_ready_and_is_not_rewritten_when_unchanged():
    kube = FakeKube(cluster(group(replicas=2)))
    run(kube)
    kube.set_ready()
    run(kube)
    assert kube.clusters["c"]["status"]["state"] == "Ready"
    kube.calls.clear()
    run(kube)
    assert ("patch", "status") not in kube.calls


def test_a_rejected_pod_is_reported_as_failed_with_a_warning_event():
    kube = FakeKube(cluster(group(replicas=1)))
    kube.reject_pods = 'pods "x" is forbidden: exceeded quota'
    events: list = []
    run(kube, events)
    status = kube.clusters["c"]["status"]
    assert status["state"] == "Failed"
    assert "exceeded quota" in status["reason"]
    assert ("Warning", "FailedCreatePod") in events


def test_a_deleted_cluster_ends_the_pass():
    assert not run(FakeKube())


def test_the_controller_coalesces_pokes_and_retires_the_worker_of_a_deleted_cluster():
    kube = FakeKube(cluster(group(replicas=1)))
    settings = dataclasses.replace(SETTINGS, reconcile=ReconcileSettings(resync_seconds=60))
    controller = Controller(settings)
    controller._kube = kube  # type: ignore[assignment]

    def passes() -> int:
        return sum(1 for c in kube.calls if c == ("get", "spindlecluster"))

    async def scenario() -> None:
        controller.poke(NS, "c")
        for _ in range(5):
            controller.poke(NS, "c")
        await eventually(lambda: ("patch", "status") in kube.calls)
        await eventually(lambda: not controller._wakeups[(NS, "c")].is_set())
        # Six pokes while at most one pass ran: one pass plus at most one coalesced re-run.
        assert 1 <= passes() <= 2
        assert controller.active() == {f"{NS}/c": True}
        del kube.clusters["c"]
        controller.poke(NS, "c")
        await eventually(lambda: controller.active() == {})
        await controller.stop()

    asyncio.run(scenario())


def test_a_conflict_from_a_stale_read_is_retried_with_a_fresh_one():
    g = group(replicas=1)
    kube = FakeKube(cluster(g))
    run(kube)
    pod_name = next(name for kind, name in kube.objects if kind == "Pod" and "worker" in name)
    kube.clusters["c"]["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": [pod_name]}
    real_get = kube.get_cluster
    reads = iter(range(100))

    def stale_first(namespace: str, name: str) -> dict[str, Any] | None:
        c = real_get(namespace, name)
        if c is not None and next(reads) == 0:
            c["metadata"]["resourceVersion"] = "6"  # what a lagging cache would return
        return c

    kube.get_cluster = stale_first  # type: ignore[method-assign]
    controller = Controller(SETTINGS)
    controller._kube = kube  # type: ignore[assignment]

    async def scenario() -> None:
        controller.poke(NS, "c")
        await eventually(
            lambda: kube.clusters["c"]["spec"]["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == []
        )
        await controller.stop()

    asyncio.run(scenario())
    assert kube.clusters["c"]["spec"]["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == []
    assert ("Pod", pod_name) not in kube.objects
    workers = [name for kind, name in kube.objects if kind == "Pod" and "worker" in name]
    assert len(workers) == 1


def test_a_rejected_create_is_retried_with_backoff_not_only_at_the_next_resync():
    kube = FakeKube(cluster(group(replicas=1)))
    kube.reject_pods = "exceeded quota"
    settings = dataclasses.replace(
        SETTINGS, reconcile=ReconcileSettings(resync_seconds=3600, error_backoff_initial=0.01)
    )
    controller = Controller(settings)
    controller._kube = kube  # type: ignore[assignment]

    async def scenario() -> None:
        controller.poke(NS, "c")
        await eventually(lambda: kube.clusters["c"].get("status", {}).get("state") == "Failed")
        kube.reject_pods = None  # the quota is raised; no event tells the operator
        await eventually(
            lambda: (
                kube.clusters["c"]["status"]["state"] == "Pending"
                and len(kube.list_pods(NS, "spindle.dev/cluster=c")) == 2
            )
        )
        await controller.stop()

    asyncio.run(scenario())
