"""Errors raised by Spindle, named as Ray names them so `except ray.exceptions.X` keeps working."""

from __future__ import annotations

from typing import Any


class SpindleError(Exception):
    """Base of every error Spindle raises."""


RayError = SpindleError


class RayTaskError(SpindleError):
    """A task raised. The raised object is also an instance of the user's exception class."""

    def __init__(self, function_name: str = "", traceback_str: str = "", cause: BaseException | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.cause_class_name = type(cause).__name__ if cause is not None else ""
        super().__init__(self._message())

    def __reduce__(self) -> Any:
        return (_rebuild_plain, (self.function_name, self.traceback_str, self.cause, self.cause_class_name))

    def _message(self) -> str:
        what = type(self.cause).__name__ if self.cause else (getattr(self, "cause_class_name", "") or "Error")
        return f"{what} raised in task {self.function_name!r}:\n{self.traceback_str}"

    def __str__(self) -> str:
        return self._message()

    def as_instanceof_cause(self) -> BaseException:
        """Return an exception that is both a RayTaskError and an instance of the cause's class."""
        cause = self.cause
        if cause is None or isinstance(cause, RayTaskError):
            return cause or self
        cause_cls = type(cause)
        try:
            cls: Any = _dual_class(cause_cls)
            err = cls.__new__(cls)
            err.__dict__.update(getattr(cause, "__dict__", {}))
            err.args = cause.args
            err.function_name = self.function_name
            err.traceback_str = self.traceback_str
            err.cause = cause
            return err
        except TypeError:
            return self


_DUAL_CACHE: dict[type, type] = {}


def _dual_class(cause_cls: type) -> type:
    cls = _DUAL_CACHE.get(cause_cls)
    if cls is None:

        def __str__(self: Any) -> str:
            return RayTaskError._message(self)

        def __reduce__(self: Any) -> Any:
            return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause))

        cls = type(
            f"RayTaskError({cause_cls.__name__})",
            (RayTaskError, cause_cls),
            {"__str__": __str__, "__reduce__": __reduce__, "__init__": lambda self, *a, **k: None},
        )
        _DUAL_CACHE[cause_cls] = cls
    return cls


def _rebuild_plain(function_name: str, traceback_str: str, cause: BaseException | None,
                   cause_class_name: str) -> RayTaskError:
    err = RayTaskError(function_name, traceback_str, cause)
    err.cause_class_name = cause_class_name or err.cause_class_name
    return err


def _rebuild_task_error(function_name: str, traceback_str: str, cause: BaseException | None) -> BaseException:
    return RayTaskError(function_name, traceback_str, cause).as_instanceof_cause()


class WorkerCrashedError(SpindleError):
    """The worker process running the task died before it finished."""


class NodeDiedError(SpindleError):
    """The node is dead or unreachable, and no live node could take over the work."""


class TaskCancelledError(SpindleError):
    """The task was cancelled with `cancel()`."""

    def __init__(self, task_id: str = "", error_message: str | None = None) -> None:
        self.task_id = task_id
        self.error_message = error_message
        super().__init__(error_message or (f"Task {task_id} was cancelled." if task_id else "Task was cancelled."))

    def __reduce__(self) -> Any:  # rebuild from the fields, not from the message (it would be wrapped twice)
        return type(self), (self.task_id, self.error_message)


class GetTimeoutError(SpindleError, TimeoutError):
    """`get(..., timeout=)` expired before the objects were ready."""


class ObjectLostError(SpindleError):
    """The object's value can no longer be found (its node or owner died)."""

    def __init__(self, object_id_hex: str = "", reason: str = "") -> None:
        self.object_id_hex = object_id_hex
        self.reason = reason
        super().__init__(f"Object {object_id_hex} is lost: {reason}" if reason else f"Object {object_id_hex} is lost")

    def __reduce__(self) -> Any:
        return type(self), (self.object_id_hex, self.reason)


class OwnerDiedError(ObjectLostError):
    """The process that owned the object exited."""


class ObjectStoreFullError(SpindleError):
    """Neither the node's object store memory nor its spill directory has room for the object."""


class RayActorError(SpindleError):
    """The actor is dead or could not be reached (Ray's fields: actor_id, error_msg, actor_init_failed,
    preempted)."""

    BASE_ERROR_MSG = "The actor experienced an error before finishing this task."

    def __init__(self, actor_id: str | None = None, error_msg: str = BASE_ERROR_MSG, actor_init_failed: bool = False,
                 preempted: bool = False, cause: BaseException | None = None):
        self.actor_id = actor_id
        self.error_msg = error_msg
        self._actor_init_failed = actor_init_failed
        self._preempted = preempted
        self.cause = cause
        super().__init__(error_msg)

    def __str__(self) -> str:
        return self.error_msg

    def __reduce__(self) -> Any:
        return (_rebuild_actor_error, (type(self), self.actor_id, self.error_msg, self._actor_init_failed,
                                       self._preempted, self.cause))

    @property
    def preempted(self) -> bool:
        return self._preempted

    @property
    def actor_init_failed(self) -> bool:
        return self._actor_init_failed


def _rebuild_actor_error(cls: type, actor_id: str | None, error_msg: str, actor_init_failed: bool, preempted: bool,
                         cause: BaseException | None) -> RayActorError:
    err: RayActorError = RayActorError.__new__(cls)
    RayActorError.__init__(err, actor_id, error_msg, actor_init_failed, preempted, cause)
    return err


class ActorDiedError(RayActorError):
    """The actor died: its process exited, it was killed, its node died, or its constructor raised.

    ``ActorDiedError(cause)`` as in Ray: a RayTaskError cause means the constructor raised
    (``actor_init_failed``); a string is the message; Spindle's own errors also pass ``actor_id``.
    """

    BASE_ERROR_MSG = "The actor died unexpectedly before finishing this task."

    def __init__(self, cause: Any = None, actor_id: str | None = None, preempted: bool = False):
        init_failed = isinstance(cause, RayTaskError)
        if init_failed:
            msg = f"The actor died because of an error raised in its creation task, {cause}"
        elif isinstance(cause, str):
            msg, cause = cause, None
        else:
            msg = ActorDiedError.BASE_ERROR_MSG
        super().__init__(actor_id, msg, init_failed, preempted, cause if isinstance(cause, BaseException) else None)

    @staticmethod
    def from_task_error(task_error: RayTaskError) -> ActorDiedError:
        return ActorDiedError(task_error)


class ActorUnavailableError(RayActorError):
    """The actor can't be reached for now (restarting, or its connection broke); the call may or may not have
    run."""

    def __init__(self, error_message: str = "", actor_id: bytes | str | None = None):
        hex_id = actor_id.hex() if isinstance(actor_id, bytes) else actor_id
        super().__init__(hex_id, f"The actor {hex_id} is unavailable: {error_message}. The task may or may not "
                                 "have been executed on the actor.")


class ActorAlreadyExistsError(ValueError, SpindleError):
    """A named actor with this name already exists in the namespace (a ValueError too, as before Ray 2.x)."""

    def __init__(self, error_message: str):
        super().__init__(error_message)
        self.error_message = error_message


class AsyncioActorExit(SpindleError):
    """What ``exit_actor()`` raises in an async actor's method (as in Ray); the actor ends even if it is caught."""


class PendingCallsLimitExceeded(SpindleError):
    """A caller has more calls not yet answered on an actor than its ``max_pending_calls`` allows."""


class ActorUnschedulableError(RayActorError):
    """No node can ever host the actor."""


class RuntimeEnvSetupError(SpindleError):
    """The runtime_env could not be applied."""


class RaySystemError(SpindleError):
    """An internal error of Spindle itself."""


class CrossLanguageError(SpindleError):
    """Kept for name compatibility with Ray; Spindle is Python only."""


class TaskPlacementGroupRemoved(SpindleError):
    """The placement group a task was scheduled into was removed before the task could run."""


class ActorPlacementGroupRemoved(RayActorError):
    """The placement group an actor was scheduled into was removed."""


class ObjectRefStreamEndOfStreamError(SpindleError, StopIteration):
    """A streaming generator has no more items."""


# Ray's remaining public exceptions, with Ray's class hierarchy, so `except ray.exceptions.X` clauses work.
class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object from another node timed out."""


class ObjectFreedError(ObjectLostError):
    """The object was freed explicitly (``internal.free``) before it was read."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and re-running the task that made it failed."""


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """The object was deleted while still referenced (a reference counting bug)."""


class OutOfMemoryError(SpindleError):
    """The task or actor was killed because its node ran out of memory."""


class OutOfDiskError(SpindleError):
    """The node's disk is full, so the object could not be stored or spilled."""


class TaskUnschedulableError(SpindleError):
    """No node can ever run the task (its scheduling constraints cannot be met)."""


class ActorHandleNotFoundError(ValueError, SpindleError):
    """An actor handle was used in a process that cannot resolve it."""


class LocalRayletDiedError(SpindleError):
    """The node agent of the process running the task died."""


class UnserializableException(SpindleError):
    """A task raised an exception that could not be serialized; its stack trace is kept as text."""

    def __init__(self, original_stack_trace: str = "") -> None:
        self.original_stack_trace = original_stack_trace
        super().__init__(original_stack_trace)

    def __reduce__(self) -> Any:
        return type(self), (self.original_stack_trace,)


class RpcError(SpindleError):
    """A call to a cluster process failed (``rpc_code`` is the gRPC status code, when known)."""

    def __init__(self, message: str = "", rpc_code: int | None = None) -> None:
        self.rpc_code = rpc_code
        super().__init__(message)

    def __reduce__(self) -> Any:
        return type(self), (str(self), self.rpc_code)


class PlasmaObjectNotAvailable(SpindleError):
    """The object is not (yet) in the local object store."""


__all__ = [
    "ActorAlreadyExistsError",
    "ActorDiedError",
    "ActorHandleNotFoundError",
    "ActorPlacementGroupRemoved",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "AsyncioActorExit",
    "CrossLanguageError",
    "GetTimeoutError",
    "LocalRayletDiedError",
    "NodeDiedError",
    "ObjectFetchTimedOutError",
    "ObjectFreedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "ObjectRefStreamEndOfStreamError",
    "ObjectStoreFullError",
    "OutOfDiskError",
    "OutOfMemoryError",
    "OwnerDiedError",
    "PendingCallsLimitExceeded",
    "PlasmaObjectNotAvailable",
    "RayActorError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "ReferenceCountingAssertionError",
    "RpcError",
    "RuntimeEnvSetupError",
    "SpindleError",
    "TaskCancelledError",
    "TaskPlacementGroupRemoved",
    "TaskUnschedulableError",
    "UnserializableException",
    "WorkerCrashedError",
]
