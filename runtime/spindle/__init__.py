"""Spindle: Ray-style distributed Python. ``import spindle as ray`` runs Ray programs unchanged.

The public names load lazily (PEP 562) so that the head, node agent and worker processes, which
import ``spindle._head.server`` and friends, do not pay for the whole client API at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "available_resources": "_core.api",
    "cancel": "_core.api",
    "cluster_resources": "_core.api",
    "get": "_core.api",
    "get_actor": "_core.api",
    "get_gpu_ids": "_core.api",
    "timeline": "_core.api",
    "get_runtime_context": "_core.api",
    "init": "_core.api",
    "is_initialized": "_core.api",
    "kill": "_core.api",
    "nodes": "_core.api",
    "put": "_core.api",
    "remote": "_core.api",
    "shutdown": "_core.api",
    "wait": "_core.api",
    "ObjectRef": "_core.object_ref",
    "ActorClass": "actor",
    "ActorHandle": "actor",
    "exit_actor": "actor",
    "method": "actor",
    "LoggingConfig": "_logging_config",
    "ObjectRefGenerator": "_core.generators",
    "DynamicObjectRefGenerator": "_core.generators",
    "ActorID": "_id_types",
    "JobID": "_id_types",
    "NodeID": "_id_types",
    "ObjectID": "_id_types",
    "PlacementGroupID": "_id_types",
    "TaskID": "_id_types",
    "WorkerID": "_id_types",
}

# Ray's worker modes (what ``exit_actor``'s error names): a driver, a worker, local mode (not supported)
SCRIPT_MODE = 0
WORKER_MODE = 1
LOCAL_MODE = 2
_SUBMODULES = {"exceptions", "util", "actor", "runtime_context", "tune"}

__all__ = [
    "ActorClass",
    "ActorID",
    "ActorHandle",
    "DynamicObjectRefGenerator",
    "JobID",
    "LoggingConfig",
    "NodeID",
    "ObjectID",
    "ObjectRef",
    "ObjectRefGenerator",
    "PlacementGroupID",
    "SCRIPT_MODE",
    "TaskID",
    "WORKER_MODE",
    "WorkerID",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "exit_actor",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "util",
    "wait",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spindle' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))


if TYPE_CHECKING:
    from spindle import exceptions, util
    from spindle._core.api import (
        available_resources,
        cancel,
        cluster_resources,
        get,
        get_actor,
        get_gpu_ids,
        get_runtime_context,
        init,
        is_initialized,
        kill,
        nodes,
        put,
        remote,
        shutdown,
        timeline,
        wait,
    )
    from spindle._core.object_ref import ObjectRef
    from spindle._id_types import ActorID, JobID, NodeID, ObjectID, PlacementGroupID, TaskID, WorkerID
    from spindle.actor import ActorClass, ActorHandle, exit_actor, method
