"""Runs the pure reconcile against the API server: one serialized worker per SpindleCluster.

Why not kopf's create/update handlers or daemons: those store progress in annotations and daemons put a
finalizer on every cluster, so a cluster cannot be deleted while the operator is down (the namespace hangs
in Terminating). Instead kopf is used only to *watch*: any event on a cluster or on one of its pods
"pokes" that cluster's worker; the worker reads the cluster and a fresh LIST of its pods, calls
:func:`~spindle_operator._reconcile.reconcile`, executes the actions in order and writes the status if it
changed. Deletion needs no operator at all: children carry ownerReferences and the garbage collector
removes them.

Pokes coalesce (an :class:`asyncio.Event` per cluster), so a burst of pod events costs one extra pass, and
a periodic resync covers missed events. A pass never trusts memory across passes except for "the token
secret exists", so a restarted operator (or two operators briefly overlapping) converges without creating
duplicates: every pass starts from a consistent LIST, pod deletes carry a uid precondition, and the
workersToDelete clear is guarded by resourceVersion (409 → retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import secrets
from collections.abc import Callable
from typing import Any

import kubernetes

from . import _autoscale, _metrics, _pods
from ._autoscaler import Autoscalers
from ._builders import LABEL_CLUSTER, TOKEN_KEY, Obj, build_token_secret, head_service_name
from ._drain import DRAINED_REASONS, AwaitDrain, DrainNode, HeadView, nodes_from_state
from ._head_api import HeadAccess, HeadError
from ._kube import ApiError, Kube, load_configuration
from ._reconcile import (
    Action,
    ClearWorkersToDelete,
    CreatePod,
    CreateService,
    DeletePod,
    EnsureTokenSecret,
    Observed,
    PatchService,
    reconcile,
)
from ._settings import OperatorSettings
from ._status import compute_status, status_changed

logger = logging.getLogger("spindle_operator")

# (cluster body, "Normal" | "Warning", reason, message): posts a Kubernetes event on the cluster.
Emit = Callable[[Obj, str, str, str], None]


@dataclasses.dataclass(frozen=True)
class PassResult:
    """``exists``: the cluster is still there (keep its worker); ``failure``: a create was rejected."""

    exists: bool
    failure: str | None = None
    requeue_after: float | None = None  # look again this soon (a deadline or a TTL is due)
    autoscaled: bool = False  # spec.autoscalerOptions.enabled: the cluster needs an autoscaler task


def utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_emit(cluster: Obj, type_: str, reason: str, message: str) -> None:
    logger.info(
        "%s/%s %s %s: %s",
        cluster["metadata"]["namespace"],
        cluster["metadata"]["name"],
        type_,
        reason,
        message,
    )


def _deletes_busy_candidates(actions: list[Action], observed: Observed) -> bool:
    """Whether a pass would delete a ready worker by scaling: then the head is asked to drain it first."""
    ready = {_pods.name(p) for p in observed.pods if _pods.is_ready(p)}
    return any(isinstance(a, DeletePod) and a.reason in DRAINED_REASONS and a.name in ready for a in actions)


def head_view(heads: HeadAccess, cluster: Obj) -> HeadView:
    """The head's worker nodes by pod name, with ``drained`` filled in for the draining ones."""
    client = heads.client(cluster)
    try:
        nodes = nodes_from_state(client.state())
        for pod_name, node in list(nodes.items()):
            if node.state == "DRAINING":
                drained = bool(client.drain_status(node.node_id).get("drained"))
                nodes[pod_name] = dataclasses.replace(node, drained=drained)
    except HeadError as exc:
        heads.forget(cluster, exc)
        raise
    return HeadView(nodes)


def reconcile_once(
    kube: Kube,
    settings: OperatorSettings,
    namespace: str,
    name: str,
    *,
    emit: Emit = _log_emit,
    secrets_ensured: set[str] | None = None,
    now: Callable[[], str] = utcnow,
    heads: HeadAccess | None = None,
) -> PassResult:
    """One observe → decide → act → report pass."""
    ensured = set() if secrets_ensured is None else secrets_ensured
    cluster = kube.get_cluster(namespace, name)
    if cluster is None or cluster["metadata"].get("deletionTimestamp"):
        return PassResult(exists=False)
    observed = Observed(
        pods=kube.list_pods(namespace, f"{LABEL_CLUSTER}={name}"),
        service=kube.get_service(namespace, head_service_name(name)),
    )
    uid = cluster["metadata"]["uid"]
    failure: str | None = None
    requeue: float | None = None
    actions = reconcile(cluster, observed, settings, secret_known=uid in ensured)
    if heads is not None and _deletes_busy_candidates(actions, observed):
        try:
            observed = dataclasses.replace(observed, head=head_view(heads, cluster))
        except HeadError as exc:
            emit(cluster, "Warning", "DrainUnavailable", f"deleting workers without draining them: {exc}")
        else:
            actions = reconcile(cluster, observed, settings, secret_known=uid in ensured)
    for action in actions:
        if isinstance(action, EnsureTokenSecret):
            if kube.create(namespace, build_token_secret(cluster, secrets.token_urlsafe(32))) is not None:
                emit(cluster, "Normal", "CreatedSecret", f"created token secret {action.name}")
            ensured.add(uid)
        elif isinstance(action, CreateService):
            if kube.create(namespace, action.body) is not None:
                emit(
                    cluster,
                    "Normal",
                    "CreatedService",
                    f"created head service {action.body['metadata']['name']}",
                )
        elif isinstance(action, PatchService):
            kube.patch_service(namespace, action.name, action.patch)
            emit(cluster, "Normal", "UpdatedService", f"updated head service {action.name} to match the spec")
        elif isinstance(action, CreatePod):
            try:
                pod = kube.create(namespace, action.body)
            except ApiError as exc:
                if exc.status not in (400, 403, 422):
                    raise
                failure = f"creating a pod failed: {exc.message}"
                emit(cluster, "Warning", "FailedCreatePod", failure)
                continue
            if pod is not None:
                emit(cluster, "Normal", action.reason, f"{pod['metadata']['name']}: {action.message}")
        elif isinstance(action, DeletePod):
            if kube.delete_pod(namespace, action.name, action.uid):
                emit(cluster, "Normal", action.reason, f"deleted {action.name}: {action.message}")
        elif isinstance(action, ClearWorkersToDelete):
            kube.patch_cluster(namespace, name, action.patch)
            emit(cluster, "Normal", "ClearedWorkersToDelete", "processed scaleStrategy.workersToDelete")
        elif isinstance(action, DrainNode):
            requeue = settings.autoscaler.drain_poll_seconds
            assert heads is not None  # drains come only from a head view
            try:
                heads.client(cluster).drain(action.node_id, action.deadline_s, f"{action.reason}: {action.message}")
            except HeadError as exc:
                heads.forget(cluster, exc)
                emit(cluster, "Warning", "DrainFailed", f"draining {action.pod_name}: {exc}")
                continue
            emit(cluster, "Normal", "DrainingWorker",
                 f"draining {action.pod_name} (node {action.node_id}) before deleting it, at most "
                 f"{action.deadline_s:g}s: {action.message}")
        elif isinstance(action, AwaitDrain):
            requeue = settings.autoscaler.drain_poll_seconds
    status = compute_status(cluster, observed, settings, now=now(), failure=failure)
    if status_changed(cluster, status):
        try:
            kube.patch_cluster_status(namespace, name, status)
        except ApiError as exc:
            if exc.status == 404:
                return PassResult(exists=False)
            raise
    return PassResult(exists=True, failure=failure, requeue_after=requeue, autoscaled=_autoscale.enabled(cluster))


class Controller:
    """Owns one asyncio task per cluster; :meth:`poke` is the only entry point kopf handlers use."""

    kind = "SpindleCluster"  # for the reconcile metrics

    def __init__(self, settings: OperatorSettings, emit: Emit = _log_emit) -> None:
        self.settings = settings
        self.emit = emit
        self._kube: Kube | None = None
        self._wakeups: dict[tuple[str, str], asyncio.Event] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._secrets: set[str] = set()
        self._heads: HeadAccess | None = None
        self.autoscalers = Autoscalers(settings, lambda: self.kube, lambda: self.heads, emit, utcnow)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            config = load_configuration(self.settings.watch.kubeconfig)
            self._kube = Kube(kubernetes.client.ApiClient(config))
        return self._kube

    @property
    def heads(self) -> HeadAccess:
        if self._heads is None:
            kube = self.kube
            self._heads = HeadAccess(self.settings, lambda ns, secret: kube.get_secret_value(ns, secret, TOKEN_KEY))
        return self._heads

    def poke(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        task = self._tasks.get(key)
        if task is not None and not task.done():
            self._wakeups[key].set()
            return
        wake = asyncio.Event()
        self._wakeups[key] = wake
        self._tasks[key] = asyncio.create_task(self._worker(key, wake), name=f"spindle/{namespace}/{name}")
        _metrics.set_active(self.kind, len(self._tasks))

    async def stop(self) -> None:
        await self.autoscalers.stop()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _pass(self, key: tuple[str, str]) -> PassResult:
        return await asyncio.to_thread(
            reconcile_once, self.kube, self.settings, *key, emit=self.emit, secrets_ensured=self._secrets,
            heads=self.heads,
        )

    async def _worker(self, key: tuple[str, str], wake: asyncio.Event) -> None:
        rs = self.settings.reconcile
        delay = rs.error_backoff_initial
        while True:
            wake.clear()
            try:
                result = await _metrics.timed(self.kind, self._pass(key))
            except ApiError as exc:
                if exc.status == 409:  # someone else wrote first: re-read and decide again
                    logger.debug("%s/%s: conflict, retrying: %s", *key, exc)
                    await asyncio.sleep(0.1)
                else:
                    logger.warning("%s/%s: reconcile failed, retrying in %.1fs: %s", *key, delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, rs.error_backoff_max)
                continue
            except Exception:
                logger.exception("%s/%s: reconcile failed, retrying in %.1fs", *key, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, rs.error_backoff_max)
                continue
            if not result.exists:
                if wake.is_set():  # poked while the last pass ran: look again before retiring
                    continue
                if self._tasks.get(key) is asyncio.current_task():
                    del self._tasks[key]
                    del self._wakeups[key]
                    _metrics.set_active(self.kind, len(self._tasks))
                return
            if result.autoscaled:
                self.autoscalers.ensure(*key)
            timeout = rs.resync_seconds
            if result.failure:  # e.g. a quota: retry with backoff, not only at the next resync
                timeout, delay = delay, min(delay * 2, rs.error_backoff_max)
            else:
                delay = rs.error_backoff_initial
            if result.requeue_after is not None:
                timeout = min(timeout, max(result.requeue_after, 0.05))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=timeout)

    def active(self) -> dict[str, Any]:
        """For tests and debugging: which clusters have a live worker."""
        return {f"{ns}/{n}": not t.done() for (ns, n), t in self._tasks.items()}
