"""Running one task or actor call in a worker: its arguments, its user code, and its result or error.

Split out of ``executor.py`` (which owns the worker's queue, its streams, handing tasks back and
cancellation) because running a call is its own sequence: mark it running, set its environment,
call the function or actor method (sync, generator or coroutine), turn the value into its returns
or the exception into a RayTaskError with the user's traceback (Spindle's own frames trimmed),
treat ``exit_actor()`` as the actor's end, and send the result back on the stream it came from.
Functions take the ``Executor`` whose lock and context they share.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from spindle import _actor_death, _logging_config
from spindle._core import gen_exec
from spindle._core.result_sink import Sink
from spindle._core.store_client import unmap
from spindle._core.task_events import error_fields
from spindle._proto import pb
from spindle._serialization import pickle_error
from spindle.exceptions import ActorDiedError, ObjectLostError, ObjectStoreFullError, RayTaskError, TaskCancelledError

if TYPE_CHECKING:
    from spindle._core.executor import Executor


class ActorExit(BaseException):
    """Raised by ``exit_actor()`` to end the actor gracefully."""



def _function(ex: Executor, spec: pb.TaskSpec) -> Any:
    fn = ex.functions.get(spec.function_id)
    if fn is None:
        fn = ex.functions[spec.function_id] = cloudpickle.loads(spec.function_blob)
    return fn

def _begin(ex: Executor, spec: pb.TaskSpec, sink: Sink) -> bool:
    with ex.lock:
        if spec.task_id in ex.skip:
            ex.skip.discard(spec.task_id)
            return False
        ex.pending.pop(spec.task_id, None)
        ex.actor_queued.discard(spec.task_id)
        if sink.closed and not spec.actor_id:
            return False  # nobody is waiting for this result any more
        ident = threading.get_ident()
        ex.running[spec.task_id] = ident
        ex.running_sinks[spec.task_id] = sink
        if ident == ex.main_ident:
            ex.current_started = time.monotonic()
    ex.ctx.task_id, ex.ctx.sink = spec.task_id, sink
    ex.ctx.name = spec.name
    ex.ctx.placement = spec.placement if spec.HasField("placement") else None
    ex.ctx.function_name = spec.name
    ex.cw.job_id = spec.job_id
    ex.cw.events.running(spec.task_id, spec.name, spec.job_id, spec.actor_id)
    return True

def _function_name(ex: Executor, spec: pb.TaskSpec) -> str:
    """Ray's ``get_task_function_name()``: module.qualname of the function or method that runs."""
    if spec.actor_id and ex.actor is not None:
        cls = type(ex.actor)
        return f"{cls.__module__}.{cls.__qualname__}.{spec.method}"
    fn = ex.functions.get(spec.function_id)
    if fn is None:
        return spec.name
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', spec.name)}".lstrip(".")

def _end(ex: Executor, spec: pb.TaskSpec) -> None:
    with ex.lock:
        ex.running.pop(spec.task_id, None)
        ex.running_sinks.pop(spec.task_id, None)
        ex.cancelling.discard(spec.task_id)
        if threading.get_ident() == ex.main_ident:
            ex.current_started = 0.0
    ex.cw.submitter.task_finished(spec.task_id)
    ex.ctx.task_id, ex.ctx.sink = b"", None

def execute(ex: Executor, spec: pb.TaskSpec, sink: Sink) -> None:
    if not _begin(ex, spec, sink):
        return
    start = time.perf_counter()
    saved_env = apply_env({**spec.env_vars, **sink.accelerator_env} if sink.accelerator_env else spec.env_vars)
    _logging_config.apply_from_env()
    saved_rt_env = ex.cw.runtime_env_vars
    if not spec.actor_id:  # what it submits inherits its env_vars (the job's included), as in Ray
        ex.cw.runtime_env_vars = dict(spec.env_vars)
    maps: list[tuple[bytes, memoryview]] = []
    try:
        result = _run(ex, spec, sink, start, maps)
    except (KeyboardInterrupt, TaskCancelledError) as e:
        if spec.task_id in ex.cancelling or isinstance(e, TaskCancelledError):
            result = pb.TaskResult(task_id=spec.task_id, failed=True, cancelled=True)
        else:
            result = _error_result(ex, spec, e, start)
    except ActorExit:
        result = _exit_result(ex, spec)
    except ObjectLostError as e:  # an argument's value died with its node: its owner may rebuild it
        result = _error_result(ex, spec, e, start)
        if e.object_id_hex and any(a.value.object_id.hex() == e.object_id_hex for a in spec.args):
            result.lost_object_ids.append(bytes.fromhex(e.object_id_hex))
    except BaseException as e:  # noqa: BLE001 - any user error is reported, never kills the worker
        result = _error_result(ex, spec, e, start)
    finally:
        restore_env(saved_env)
        ex.cw.runtime_env_vars = saved_rt_env
        flush_std()
        _end(ex, spec)
    if ex.exit_called and not ex.exiting:  # exit_actor() whose exception the user caught
        result = _exit_result(ex, spec)
    if maps:  # the arguments are gone with _run's frame: unmap their files before the owner hears back
        result.released_object_ids.extend(unmap(maps))
    ex.cw.events.finished(spec.task_id, spec.name, spec.job_id, spec.actor_id, *error_fields(result))
    sink.q.put(result)
    if ex.exiting:
        ex._flush_held()
        ex._exit_now()

def _run(ex: Executor, spec: pb.TaskSpec, sink: Sink, start: float, maps: list[tuple[bytes, memoryview]]) -> pb.TaskResult:
    args, kwargs = ex.resolve(spec.args, maps)
    fn = _actor_method(ex, spec.method) if spec.actor_id else _function(ex, spec)
    ex.ctx.function_name = _function_name(ex, spec)
    if spec.generator:  # the generator's body runs (and can be cancelled) while it streams
        return ex._call(spec.task_id,  # type: ignore[no-any-return]
                          lambda: gen_exec.run(ex, spec, fn(*args, **kwargs), sink, start), [], {})
    value = ex._call(spec.task_id, fn, args, kwargs)
    return _result(ex, spec, value, start)

def _actor_method(ex: Executor, name: str) -> Any:
    """The actor's method, or one of the methods every actor has (``__ray_ready__``, ``__ray_call__``,
    ``__ray_terminate__``) unless the class defines its own."""
    fn = getattr(ex.actor, name, None)
    if fn is not None:
        return fn
    if name == "__ray_ready__":
        return lambda: True
    if name == "__ray_call__":
        return lambda f, *a, **k: f(ex.actor, *a, **k)
    if name == "__ray_terminate__":
        return _terminate
    return getattr(ex.actor, name)  # raises the AttributeError the caller should see

async def execute_async(ex: Executor, spec: pb.TaskSpec, sink: Sink) -> None:
    sem = ex.group_sems.get(spec.concurrency_group, ex.async_sem)
    assert sem is not None
    async with sem:
        if ex.exiting:  # queued behind exit_actor(): never runs (the caller learns the actor died)
            return
        with ex.lock:
            if spec.task_id in ex.skip:  # cancelled while queued: already answered
                ex.skip.discard(spec.task_id)
                return
            ex.actor_queued.discard(spec.task_id)
            me = asyncio.current_task()
            if me is not None:
                ex.async_tasks[spec.task_id] = me
        start = time.perf_counter()
        ex.ctx.task_id, ex.ctx.sink, ex.ctx.name = spec.task_id, sink, spec.name
        ex.cw.events.running(spec.task_id, spec.name, spec.job_id, spec.actor_id)
        try:
            args, kwargs = ex.resolve(spec.args)
            ex.ctx.function_name = _function_name(ex, spec)
            value = _actor_method(ex, spec.method)(*args, **kwargs)
            if spec.generator:
                result = await gen_exec.run_async(ex, spec, value, sink, start)
            else:
                if inspect.isawaitable(value):
                    value = await value
                result = _result(ex, spec, value, start)
        except (TaskCancelledError, asyncio.CancelledError):
            result = pb.TaskResult(task_id=spec.task_id, failed=True, cancelled=True)
        except ActorExit:
            result = _exit_result(ex, spec)
        except BaseException as e:  # noqa: BLE001
            result = _error_result(ex, spec, e, start)
        if ex.exit_called and not ex.exiting:
            result = _exit_result(ex, spec)
        with ex.lock:
            ex.async_tasks.pop(spec.task_id, None)
        flush_std()
        ex.cw.events.finished(spec.task_id, spec.name, spec.job_id, spec.actor_id, *error_fields(result))
        sink.q.put(result)
        if ex.exiting:
            ex._exit_now()

def _result(ex: Executor, spec: pb.TaskSpec, value: Any, start: float) -> pb.TaskResult:
    n = spec.num_returns
    if n == 1:
        values = [value]
    else:
        values = list(value) if value is not None or n == 0 else []
        if len(values) != n:
            raise ValueError(f"Task {spec.name!r} declared num_returns={n} but returned {len(values)} values")
    try:
        returns = [ex.cw.to_object_value(rid, v, spec.owner_address)
                   for rid, v in zip(spec.return_ids, values, strict=True)]
    except ObjectStoreFullError as e:  # the store's fault, not the task's: the caller gets this error as is
        return pb.TaskResult(task_id=spec.task_id, failed=True, app_error=True, error=pickle_error(e),
                             error_text=str(e), exec_seconds=time.perf_counter() - start)
    return pb.TaskResult(task_id=spec.task_id, returns=returns, exec_seconds=time.perf_counter() - start)

def _error_result(ex: Executor, spec: pb.TaskSpec, e: BaseException, start: float) -> pb.TaskResult:
    tb = user_traceback(e)
    err = RayTaskError(spec.name, tb, e).as_instanceof_cause()
    return pb.TaskResult(task_id=spec.task_id, failed=True, app_error=True, error=pickle_error(err),
                         error_text=tb, exec_seconds=time.perf_counter() - start)

def _exit_result(ex: Executor, spec: pb.TaskSpec) -> pb.TaskResult:
    ex.exiting = True
    a = ex.actor_spec
    err = _actor_death.died_error(a.actor_id, a.class_name, a.name, a.namespace, ex.cw.address,
                                  _actor_death.EXIT_ACTOR) if a is not None else ActorDiedError()
    return pb.TaskResult(task_id=spec.task_id, failed=True, error=pickle_error(err), error_text=str(err))


# Spindle's own frames between the worker's loop and the user's code (the executor's, this module's, actor_host's)
_OWN_FILES = {__file__, str(Path(__file__).with_name("executor.py")), str(Path(__file__).with_name("actor_host.py"))}


def user_traceback(e: BaseException) -> str:
    """The traceback from the user's code down, without Spindle's own frames above it (as Ray shows it)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def _terminate() -> None:
    """``__ray_terminate__``: end the actor gracefully once the calls queued before it have run."""
    raise ActorExit()


def apply_env(env: Any) -> dict[str, str | None]:
    saved: dict[str, str | None] = {}
    for k, v in dict(env).items():
        saved[k] = os.environ.get(k)
        os.environ[k] = v
    return saved


def restore_env(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def flush_std() -> None:
    import sys

    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
