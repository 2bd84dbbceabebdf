"""The process's one CoreWorker (driver or worker), and what ``get_runtime_context()`` reports.

``core_or_init()`` is what the APIs Ray auto-initialises on (``get``/``put``/``wait``/``.remote()``,
...) call: a program that never called ``init()`` gets an embedded local cluster on first use, as
Ray does (``RAY_ENABLE_AUTO_CONNECT=0`` / ``SPINDLE_ENABLE_AUTO_CONNECT=0`` turn that off).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

_core: list[CoreWorker | None] = [None]
_auto_lock = threading.Lock()


def set_core(cw: CoreWorker | None) -> None:
    _core[0] = cw


def core() -> CoreWorker:
    cw = _core[0]
    if cw is None:
        raise RuntimeError("spindle is not initialized: call spindle.init() first")
    return cw


def auto_connect_enabled() -> bool:
    flag = os.environ.get("SPINDLE_ENABLE_AUTO_CONNECT", os.environ.get("RAY_ENABLE_AUTO_CONNECT", ""))
    return flag != "0"


def core_or_init() -> CoreWorker:
    """The CoreWorker, starting ``init()`` (embedded cluster or ``SPINDLE_ADDRESS``) on first use as Ray does."""
    cw = _core[0]
    if cw is not None:
        return cw
    if auto_connect_enabled():
        with _auto_lock:
            if _core[0] is None:
                from spindle._core.api import init

                init(ignore_reinit_error=True)
    return core()


def maybe_core() -> CoreWorker | None:
    return _core[0]


class RuntimeContext:
    """What Ray's ``get_runtime_context()`` returns: ids of the job, node, task, actor and worker."""

    def __init__(self, cw: CoreWorker):
        self._cw = cw

    def get(self) -> dict[str, Any]:
        """Ray's dict form: job_id, node_id, namespace, and task_id/actor_id inside a task or actor."""
        out: dict[str, Any] = {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                               "namespace": self.namespace}
        if self.get_task_id() is not None:
            out["task_id"] = self.get_task_id()
        if self.get_actor_id() is not None:
            out["actor_id"] = self.get_actor_id()
        return out

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    def get_job_id(self) -> str:
        return self._cw.job_id.hex()

    def get_node_id(self) -> str:
        return self._cw.node_id

    def get_worker_id(self) -> str:
        return self._cw.worker_id

    def get_task_id(self) -> str | None:
        ex = self._cw.executor
        return ex.ctx.task_id.hex() if ex is not None and ex.ctx.task_id else None

    def get_task_name(self) -> str | None:
        ex = self._cw.executor
        return (ex.ctx.name or None) if ex is not None and ex.ctx.task_id else None

    def get_task_function_name(self) -> str | None:
        ex = self._cw.executor
        return (ex.ctx.function_name or None) if ex is not None and ex.ctx.task_id else None

    def get_actor_id(self) -> str | None:
        ex = self._cw.executor
        return ex.actor_spec.actor_id.hex() if ex is not None and ex.actor_spec is not None else None

    def get_actor_name(self) -> str | None:
        ex = self._cw.executor
        return (ex.actor_spec.name or None) if ex is not None and ex.actor_spec is not None else None

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this code runs in (Ray raises outside an actor)."""
        ex = self._cw.executor
        if ex is None or ex.actor_spec is None:
            raise RuntimeError("This method is only available in an actor.")
        from spindle.actor import handle_from_spec

        return handle_from_spec(ex.actor_spec)

    @property
    def namespace(self) -> str:
        ex = self._cw.executor
        if ex is not None and ex.actor_spec is not None:
            return ex.actor_spec.namespace
        if ex is not None and ex.ctx.sink is not None and ex.ctx.sink.namespace:
            return str(ex.ctx.sink.namespace)
        return self._cw.namespace

    def get_assigned_resources(self) -> dict[str, float]:
        """The resources the running task or actor holds (empty in a driver)."""
        ex = self._cw.executor
        if ex is None:
            return {}
        return dict(ex.assigned_resources())

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The accelerator ids assigned to this worker, by resource name (Ray's shape)."""
        from spindle._core.accelerators import accelerator_ids

        return accelerator_ids()

    def get_resource_ids(self) -> dict[str, list[tuple[int | str, float]]]:
        """Ray's older form of ``get_accelerator_ids``: each held accelerator's ids with the share of each held."""
        held = self.get_assigned_resources()
        out: dict[str, list[tuple[int | str, float]]] = {}
        for name, ids in self.get_accelerator_ids().items():
            if not ids:
                continue
            share = min(1.0, held.get(name, 0.0) / len(ids))
            out[name] = [(int(i) if i.isdigit() else i, share) for i in ids]
        return out

    def get_session_name(self) -> str:
        """The cluster's session name: the same in the driver and in every task and actor of the cluster."""
        cw = self._cw
        if not cw.session:  # a worker: the head answers this reserved key with its session
            from spindle._proto import pb
            from spindle._sessions import SESSION_NAME_KEY

            reply = cw.head().KvGet(pb.KvRequest(key=SESSION_NAME_KEY), metadata=cw.md, timeout=30)
            cw.session = reply.value.decode()
        return cw.session

    def get_node_labels(self) -> dict[str, str]:
        return dict(getattr(self._cw, "node_labels", None) or {})

    @property
    def gcs_address(self) -> str:
        return self._cw.head_address

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """Whether this actor has been restarted (a property, as in Ray)."""
        ex = self._cw.executor
        return bool(ex is not None and ex.actor_spec is not None and ex.actor_incarnation > 0)

    def get_runtime_env_string(self) -> str:
        import json

        return json.dumps(self.runtime_env)

    @property
    def runtime_env(self) -> dict[str, Any]:
        from spindle._logging_config import ENV_VAR

        env = {k: v for k, v in self._cw.runtime_env_vars.items() if k != ENV_VAR}  # ours, not the user's
        return {"env_vars": env} if env else {}

    def get_placement_group_id(self) -> str | None:
        """The placement group the current task or actor runs in (hex), or None."""
        from spindle.util.placement_group import get_current_placement_group

        pg = get_current_placement_group()
        return pg.id.hex() if pg is not None else None

    @property
    def current_placement_group_id(self) -> str | None:
        return self.get_placement_group_id()

    def is_canceled(self) -> bool:
        """Whether the running task has been cancelled (Ray's check for code that catches the interrupt)."""
        ex = self._cw.executor
        return bool(ex is not None and ex.ctx.task_id and ex.ctx.task_id in ex.cancelling)

    def get_temp_dir(self) -> str:
        """The directory this cluster's sessions (logs, records) live in on this node."""
        from spindle import _sessions

        return _sessions.root()

    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether what the current task or actor submits defaults to its placement group (Ray's
        ``placement_group_capture_child_tasks``)."""
        from spindle._core.pg_client import current_strategy

        s = current_strategy(self._cw)
        return bool(s is not None and s.capture_child_tasks)
