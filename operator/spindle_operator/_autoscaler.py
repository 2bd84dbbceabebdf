"""The autoscaler's I/O shell: one periodic task per autoscaled SpindleCluster.

Why not a kopf ``@timer``: kopf timers are daemons, and daemons put a finalizer on every cluster, so a
cluster could not be deleted while the operator is down (see ``_controller.py``). The controller starts
one asyncio task per cluster whose spec enables autoscaling; each tick reads the cluster and its pods,
asks the head (with the cluster token) for its state and for the drains in progress, calls the pure
:func:`~spindle_operator._autoscale.plan`, and executes it: spec patch (guarded by resourceVersion), status,
then drain/undrain calls. A tick runs in a thread with timeouts on every call and never waits for a drain:
drains progress across ticks through ``status.autoscaler.pendingDrains``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from . import _autoscale
from ._builders import LABEL_CLUSTER, Obj
from ._head_api import HeadAccess, HeadError
from ._kube import ApiError, Kube
from ._settings import OperatorSettings
from ._status import status_changed

logger = logging.getLogger("spindle_operator.autoscaler")

Emit = Callable[[Obj, str, str, str], None]


def _head_ready(cluster: Obj) -> bool:
    conditions = (cluster.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "HeadPodReady" and c.get("status") == "True" for c in conditions)


def tick_once(
    kube: Kube, heads: HeadAccess, namespace: str, name: str, *, emit: Emit, now: Callable[[], str]
) -> bool:
    """One tick; False when the cluster is gone or no longer autoscaled (the task then ends)."""
    cluster = kube.get_cluster(namespace, name)
    if cluster is None or cluster["metadata"].get("deletionTimestamp") or not _autoscale.enabled(cluster):
        return False
    if (cluster.get("spec") or {}).get("suspend") or not _head_ready(cluster):
        return True  # nothing to ask yet (a starting head is not an error worth an event)
    previous = (cluster.get("status") or {}).get("autoscaler") or {}
    try:
        client = heads.client(cluster)
        state = client.state()
        drained = {
            p["nodeId"]: bool(client.drain_status(p["nodeId"]).get("drained"))
            for p in previous.get("pendingDrains") or []
        }
    except HeadError as exc:
        heads.forget(cluster, exc)
        if previous.get("headError") != str(exc):
            emit(cluster, "Warning", "AutoscalerHeadUnreachable", str(exc))
            kube.patch_cluster_status(namespace, name, {"autoscaler": {"headError": str(exc)}})
        return True
    pods = kube.list_pods(namespace, f"{LABEL_CLUSTER}={name}")
    tick = _autoscale.plan(cluster, pods, state, drained, now())
    if tick.spec_patch is not None:
        kube.patch_cluster(namespace, name, tick.spec_patch)  # 409: another writer; the next tick decides again
    if status_changed({"status": {"autoscaler": previous}}, {"autoscaler": tick.status}):
        kube.patch_cluster_status(namespace, name, {"autoscaler": tick.status})
    for reason, message in tick.events:
        emit(cluster, "Normal", reason, message)
    for drain in tick.drains:
        try:
            client.drain(drain.node_id, drain.deadline_s, "idle: removed by the autoscaler")
        except HeadError as exc:  # the pending entry stays; the next tick asks again
            emit(cluster, "Warning", "DrainFailed", f"draining {drain.pod_name}: {exc}")
    for undrain in tick.undrains:
        try:
            client.undrain(undrain.node_id)
        except HeadError as exc:
            emit(cluster, "Warning", "UndrainFailed", f"undraining {undrain.pod_name}: {exc}")
    return True


class Autoscalers:
    """One task per autoscaled cluster; :meth:`ensure` is idempotent and cheap (called on every pass)."""

    def __init__(
        self, settings: OperatorSettings, kube: Callable[[], Kube], heads: Callable[[], HeadAccess],
        emit: Emit, now: Callable[[], str],
    ) -> None:
        self.settings = settings
        self._kube = kube
        self._heads = heads
        self._emit = emit
        self._now = now
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def ensure(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"spindle-autoscaler/{namespace}/{name}")

    async def _run(self, key: tuple[str, str]) -> None:
        interval = self.settings.autoscaler.interval_seconds
        delay = interval
        while True:
            try:
                alive = await asyncio.to_thread(
                    tick_once, self._kube(), self._heads(), *key, emit=self._emit, now=self._now
                )
                delay = interval
            except ApiError as exc:
                level = logging.DEBUG if exc.status == 409 else logging.WARNING
                logger.log(level, "%s/%s: autoscaler tick failed: %s", *key, exc)
                alive, delay = True, min(max(delay * 2, interval), 60.0)
            except Exception:
                logger.exception("%s/%s: autoscaler tick failed", *key)
                alive, delay = True, min(max(delay * 2, interval), 60.0)
            if not alive:
                if self._tasks.get(key) is asyncio.current_task():
                    del self._tasks[key]
                return
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def active(self) -> dict[str, Any]:
        return {f"{ns}/{n}": not t.done() for (ns, n), t in self._tasks.items()}
