"""The public surface is small, explicit and Ray-compatible; internals stay private."""

from __future__ import annotations

import importlib
import subprocess
import sys

import spindle

RAY_API = [
    "ActorClass", "ActorHandle", "DynamicObjectRefGenerator", "LoggingConfig", "ObjectRef", "ObjectRefGenerator",
    "SCRIPT_MODE", "WORKER_MODE", "ActorID", "JobID", "NodeID", "ObjectID", "PlacementGroupID", "TaskID", "WorkerID", "available_resources", "cancel", "cluster_resources",
    "exceptions", "exit_actor", "get", "get_actor", "get_gpu_ids", "get_runtime_context", "init", "is_initialized",
    "kill", "method", "nodes", "put", "remote", "shutdown", "timeline", "util", "wait",
]


def test_the_exported_names_are_pinned() -> None:
    assert sorted(spindle.__all__) == sorted(RAY_API)
    for name in spindle.__all__:
        assert getattr(spindle, name) is not None


def test_rays_exception_and_utility_names_exist() -> None:
    exc = importlib.import_module("spindle.exceptions")
    for name in ("RayError", "RayTaskError", "WorkerCrashedError", "GetTimeoutError", "TaskCancelledError",
                 "ObjectLostError", "RayActorError", "ActorDiedError", "ActorUnavailableError"):
        assert issubclass(getattr(exc, name), exc.RayError)
    assert issubclass(exc.GetTimeoutError, TimeoutError)
    assert issubclass(exc.ActorDiedError, exc.RayActorError)
    from spindle.util import ActorPool
    from spindle.util.queue import Queue
    from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    assert ActorPool and Queue and NodeAffinitySchedulingStrategy
    assert spindle.actor.exit_actor is spindle.exit_actor


def test_service_processes_do_not_import_the_client_api() -> None:
    code = ("import sys, spindle._head.server, spindle._agent.agent; "
            "print(any(m in sys.modules for m in ('cloudpickle', 'spindle._core.api', 'spindle._core.core_worker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rays_other_public_exceptions_exist_with_rays_class_hierarchy_and_survive_pickling() -> None:
    import pickle

    exc = importlib.import_module("spindle.exceptions")
    for name in ("ObjectFetchTimedOutError", "ObjectFreedError", "ObjectReconstructionFailedError",
                 "ReferenceCountingAssertionError"):
        assert issubclass(getattr(exc, name), exc.ObjectLostError), name
        assert name in exc.__all__
    for name in ("OutOfMemoryError", "OutOfDiskError", "TaskUnschedulableError", "ActorHandleNotFoundError",
                 "LocalRayletDiedError", "UnserializableException", "RpcError", "PlasmaObjectNotAvailable"):
        assert issubclass(getattr(exc, name), exc.RayError), name
        assert not issubclass(getattr(exc, name), exc.ObjectLostError), name
        assert name in exc.__all__
    assert issubclass(exc.ReferenceCountingAssertionError, AssertionError)
    assert issubclass(exc.ActorHandleNotFoundError, ValueError)
    rpc = pickle.loads(pickle.dumps(exc.RpcError("head unreachable", rpc_code=14)))
    assert (str(rpc), rpc.rpc_code) == ("head unreachable", 14)
    unser = pickle.loads(pickle.dumps(exc.UnserializableException("Traceback ...")))
    assert unser.original_stack_trace == "Traceback ..."
    freed = pickle.loads(pickle.dumps(exc.ObjectFreedError("ab12", "freed by internal.free")))
    assert isinstance(freed, exc.ObjectFreedError) and freed.object_id_hex == "ab12"
