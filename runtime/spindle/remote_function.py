"""``@remote`` on a function: a RemoteFunction whose ``.remote()`` submits a task."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from spindle import _ids, _runtime_env, _signature
from spindle._core.context import core_or_init
from spindle._serialization import pickle_function

TASK_OPTIONS = {
    "num_cpus", "num_gpus", "resources", "num_returns", "max_retries", "retry_exceptions", "name",
    "scheduling_strategy", "memory", "runtime_env", "max_calls", "accelerator_type", "label_selector",
    "_metadata", "enable_task_events", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "_generator_backpressure_num_objects",
}


def validate_options(opts: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(opts) - allowed
    if unknown:
        raise ValueError(f"Invalid option(s) for {what}: {sorted(unknown)}. Valid options: {sorted(allowed)}")
    for key in ("num_cpus", "num_gpus"):
        v = opts.get(key)
        if v is not None and (not isinstance(v, (int, float)) or v < 0):
            raise ValueError(f"{key} must be a non-negative number, got {v!r}")
    if opts.get("runtime_env") is not None:
        _runtime_env.validate(opts["runtime_env"])
    nr = opts.get("num_returns")
    if nr is not None and nr not in ("streaming", "dynamic") and (not isinstance(nr, int) or nr < 0):
        raise ValueError(f"num_returns must be a non-negative int, 'streaming' or 'dynamic', got {nr!r}")


def env_vars_of(opts: dict[str, Any]) -> dict[str, str]:
    env = (opts.get("runtime_env") or {}).get("env_vars") or {}
    return {str(k): str(v) for k, v in env.items()}


class RemoteFunction:
    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]):
        validate_options(options, TASK_OPTIONS, "a remote function")
        self._function = fn
        self._options = options
        self._fn_id = _ids.new_id()
        self._blob: bytes | None = None
        self._env_spec: Any = None  # the resolved runtime_env (packages uploaded), once per options
        self._name: str = str(options.get("name") or getattr(fn, "__qualname__", getattr(fn, "__name__", "task")))
        self._params = _signature.params_of(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{self._name}()', "
            f"try '{self._name}.remote()'.")

    def __getstate__(self) -> dict[str, Any]:
        # a resolved runtime_env belongs to the process that resolved it: a worker resolves its own
        return {**self.__dict__, "_env_spec": None}

    def options(self, **options: Any) -> RemoteFunction:
        merged = {**self._options, **options}
        validate_options(merged, TASK_OPTIONS, "a remote function")
        clone = RemoteFunction.__new__(RemoteFunction)
        clone.__dict__.update(self.__dict__)
        clone._options = merged
        clone._name = str(merged.get("name") or self._name)
        clone._env_spec = None
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        _signature.check(self._params, args, kwargs, self._name)
        cw = core_or_init()
        if self._blob is None:
            self._blob = pickle_function(self._function, "remote function", self._name)
        opts = dict(self._options)
        base_env = cw.runtime_env_vars
        opts["env_vars"] = {**base_env, **env_vars_of(opts)}
        # a generator function streams its items by default, as in Ray
        opts["num_returns"] = opts.get("num_returns", "streaming" if inspect.isgeneratorfunction(self._function) else 1)
        if self._env_spec is None:
            from spindle._core.runtime_env import resolver_of

            self._env_spec = resolver_of(cw).spec_for(self._options.get("runtime_env"))[1]
        opts["runtime_env_spec"] = self._env_spec
        refs = cw.submitter.submit(self._fn_id, self._blob, self._name, args, kwargs, opts)
        n = 1 if isinstance(opts["num_returns"], str) else int(opts["num_returns"])
        if n == 1:
            return refs[0]
        return refs if n > 1 else None

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        """A lazy call for a DAG (``spindle.dag``): runs when the DAG is executed."""
        from spindle.dag.function_node import FunctionNode

        return FunctionNode(self, args, kwargs, {})
