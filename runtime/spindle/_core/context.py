"""The process's one CoreWorker (driver or worker), and what ``get_runtime_context()`` reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

_core: list[CoreWorker | None] = [None]


def set_core(cw: CoreWorker | None) -> None:
    _core[0] = cw


def core() -> CoreWorker:
    cw = _core[0]
    if cw is None:
        raise RuntimeError("spindle is not initialized: call spindle.init() first")
    return cw


def maybe_core() -> CoreWorker | None:
    return _core[0]


class RuntimeContext:
    """What Ray's ``get_runtime_context()`` returns: ids of the job, node, task, actor and worker."""

    def __init__(self, cw: CoreWorker):
        self._cw = cw

    def get_job_id(self) -> str:
        return self._cw.job_id.hex()

    def get_node_id(self) -> str:
        return self._cw.node_id

    def get_worker_id(self) -> str:
        return self._cw.worker_id

    def get_task_id(self) -> str | None:
        ex = self._cw.executor
        return ex.ctx.task_id.hex() if ex is not None and ex.ctx.task_id else None

    def get_actor_id(self) -> str | None:
        ex = self._cw.executor
        return ex.actor_spec.actor_id.hex() if ex is not None and ex.actor_spec is not None else None

    def get_actor_name(self) -> str | None:
        ex = self._cw.executor
        return (ex.actor_spec.name or None) if ex is not None and ex.actor_spec is not None else None

    @property
    def namespace(self) -> str:
        ex = self._cw.executor
        if ex is not None and ex.actor_spec is not None:
            return ex.actor_spec.namespace
        return self._cw.namespace

    def get_assigned_resources(self) -> dict[str, Any]:
        return {}

    def get_node_labels(self) -> dict[str, str]:
        return dict(getattr(self._cw, "node_labels", None) or {})

    @property
    def gcs_address(self) -> str:
        return self._cw.head_address

    def was_current_actor_reconstructed(self) -> bool:
        return False
