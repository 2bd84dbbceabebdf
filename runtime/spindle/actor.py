"""``@remote`` on a class: ActorClass, ActorHandle and ActorMethod, with Ray's options.

An actor needs 1 CPU to be placed and holds none while alive unless ``num_cpus`` is given (so
many actors fit beside running tasks). Any ``async def`` method makes it an async actor, run on
an event loop with up to ``max_concurrency`` (default 1000) calls in flight.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import cloudpickle

import spindle
from spindle import _ids, _signature
from spindle._core import actor_scope
from spindle._core.args import prepare
from spindle._core.context import core_or_init, maybe_core
from spindle._core.executor import ActorExit
from spindle._core.task_records import resources_of, strategy_of
from spindle._proto import pb
from spindle._serialization import pickle_function
from spindle.remote_function import env_vars_of, validate_options

ACTOR_OPTIONS = {
    "num_cpus", "num_gpus", "resources", "max_restarts", "max_task_retries", "max_concurrency", "name",
    "namespace", "get_if_exists", "lifetime", "scheduling_strategy", "memory", "runtime_env",
    "concurrency_groups", "accelerator_type", "max_pending_calls", "_metadata", "enable_task_events",
    "placement_group", "placement_group_bundle_index", "label_selector",
}


BUILTIN_METHODS = {"__ray_ready__": 1, "__ray_call__": 1, "__ray_terminate__": 1}


def method(*args: Any, **kwargs: Any) -> Any:
    """``@spindle.method(num_returns=N, concurrency_group="io")`` on an actor method."""
    if args and callable(args[0]) and not kwargs:
        return args[0]
    unknown = set(kwargs) - {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions"}
    if unknown:
        raise ValueError(f"Invalid option(s) for @method: {sorted(unknown)}")

    def deco(fn: Any) -> Any:
        if "num_returns" in kwargs:
            fn.__spindle_num_returns__ = kwargs["num_returns"]
        if kwargs.get("concurrency_group") is not None:
            fn.__spindle_concurrency_group__ = str(kwargs["concurrency_group"])
        return fn

    return deco


def exit_actor() -> None:
    """End the current actor gracefully (Ray's ``ray.actor.exit_actor``): calls already running finish, queued
    ones fail, its hooks and ``atexit`` handlers run, and it is never restarted. The call that made it, and every
    later one, fails with ActorDiedError. Called in the constructor, the actor ends before it ever runs a call.
    The actor exits even if the caller catches the exception this raises."""
    from spindle._core.context import maybe_core

    cw = maybe_core()
    ex = cw.executor if cw is not None else None
    if ex is None or ex.actor_spec is None:
        mode = spindle.SCRIPT_MODE if ex is None else spindle.WORKER_MODE
        raise TypeError(f"exit_actor API is called on a non-actor worker, {mode}. Call this API inside an actor "
                        "method if you'd like to exit the actor gracefully.")
    ex.exit_called = True
    if ex.loop is not None and threading.get_ident() == ex.loop_ident:  # an async actor's method, on its loop
        from spindle.exceptions import AsyncioActorExit

        raise AsyncioActorExit()
    raise ActorExit()


def _methods(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, member in inspect.getmembers(cls, predicate=lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        if name.startswith("__") and name not in ("__call__",):
            continue
        default = "streaming" if inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member) else 1
        out[name] = getattr(member, "__spindle_num_returns__", default)
    for name, n in BUILTIN_METHODS.items():
        out.setdefault(name, n)
    return out


MethodMeta = dict[str, tuple[Any, str]]  # method name -> (parameters or None, concurrency group)


def _method_meta(cls: type, methods: dict[str, int]) -> MethodMeta:
    meta: MethodMeta = {}
    for name in methods:
        fn = getattr(cls, name, None)
        if fn is None:  # a built-in (__ray_ready__ ...): checked by the actor
            continue
        meta[name] = (_signature.method_params(cls, name), getattr(fn, "__spindle_concurrency_group__", ""))
    return meta


def _load_meta(blob: bytes) -> MethodMeta:
    try:
        meta = cloudpickle.loads(blob) if blob else {}
    except Exception:  # a handle from an older client: no checks, default groups
        return {}
    return meta if isinstance(meta, dict) else {}


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, num_returns: Any, concurrency_group: str | None = None,
                 backpressure: int = -1):
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._concurrency_group = concurrency_group
        self._backpressure = backpressure

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actor methods cannot be called directly. Instead of running "
                        f"'actor.{self._name}()', try 'actor.{self._name}.remote()'.")

    def options(self, **options: Any) -> ActorMethod:
        group = options.get("concurrency_group", self._concurrency_group)
        nr = options.get("num_returns", self._num_returns)
        validate_options({"num_returns": nr}, {"num_returns"}, f"actor method {self._name!r}")
        return ActorMethod(self._handle, self._name, nr, None if group is None else str(group),
                           int(options.get("_generator_backpressure_num_objects", self._backpressure) or -1))

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        """A lazy call of this method on this actor, for a DAG (``spindle.dag``)."""
        from spindle.dag.class_node import ClassMethodNode

        return ClassMethodNode(self._handle, self._name, args, kwargs, {})

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        h = self._handle
        params, default_group = h._meta.get(self._name, (None, ""))
        _signature.check(params, args, kwargs, f"{h._class_name}.{self._name}")
        group = default_group if self._concurrency_group is None else self._concurrency_group
        refs = core_or_init().actors.submit(h._actor_id, h._max_task_retries, self._name,
                                            f"{h._class_name}.{self._name}", args, kwargs, self._num_returns,
                                            concurrency_group=group, backpressure=self._backpressure,
                                            max_pending_calls=h._max_pending_calls)
        n = 1 if isinstance(self._num_returns, str) else int(self._num_returns)
        if n == 1:
            return refs[0]
        return refs if n > 1 else None


class ActorHandle:
    def __init__(self, actor_id: bytes, class_name: str, methods: dict[str, int], max_task_retries: int,
                 meta: MethodMeta | None = None, max_pending_calls: int = -1):
        self._actor_id = actor_id
        self._max_pending_calls = max_pending_calls
        self._class_name = class_name
        self._methods = methods
        self._max_task_retries = max_task_retries
        self._meta: MethodMeta = meta or {}
        actor_scope.handle_born(actor_id)

    def __del__(self) -> None:
        actor_id = self.__dict__.get("_actor_id")
        if actor_id is not None:
            actor_scope.handle_gone(actor_id)

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods", {})
        if name in methods:
            return ActorMethod(self, name, methods[name])
        raise AttributeError(f"'{self.__dict__.get('_class_name', 'Actor')}' actor has no method '{name}'")

    def __reduce__(self) -> Any:
        actor_scope.escaped(self._actor_id)
        cw = maybe_core()
        if cw is not None:  # whoever receives the handle asks the head about the actor: it must know it by then
            cw.actors.registered(self._actor_id)
        return (ActorHandle, (self._actor_id, self._class_name, self._methods, self._max_task_retries, self._meta,
                              self._max_pending_calls))

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    @property
    def actor_id(self) -> str:
        return self._actor_id.hex()


def handle_from_info(info: pb.ActorInfo) -> ActorHandle:
    return handle_from_spec(info.spec, info.actor_id)


def handle_from_spec(spec: pb.ActorSpec, actor_id: bytes = b"") -> ActorHandle:
    methods = cloudpickle.loads(spec.methods_blob) if spec.methods_blob else {}
    return ActorHandle(actor_id or spec.actor_id, spec.class_name, methods, spec.max_task_retries,
                       _load_meta(spec.method_meta_blob), spec.max_pending_calls or -1)


class ActorClass:
    def __init__(self, cls: type, options: dict[str, Any]):
        validate_options(options, ACTOR_OPTIONS, "an actor")
        self._cls = cls
        self._options = options
        self._blob: bytes | None = None
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', "
                        f"use '{self.__name__}.remote()'.")

    def options(self, **options: Any) -> ActorClass:
        merged = {**self._options, **options}
        validate_options(merged, ACTOR_OPTIONS, "an actor")
        clone = ActorClass.__new__(ActorClass)
        clone.__dict__.update(self.__dict__)
        clone._options = merged
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        init = getattr(self._cls, "__init__", None)
        init_params = () if init is object.__init__ else _signature.method_params(self._cls, "__init__")
        _signature.check(init_params, args, kwargs, self.__name__)
        cw = core_or_init()
        opts = self._options
        if self._blob is None:
            self._blob = pickle_function(self._cls, "actor class", self.__name__)
        methods = _methods(self._cls)
        meta = _method_meta(self._cls, methods)
        groups = concurrency_groups_of(opts.get("concurrency_groups"), meta)
        is_async = any(inspect.iscoroutinefunction(getattr(self._cls, m, None)) or
                       inspect.isasyncgenfunction(getattr(self._cls, m, None)) for m in methods)
        explicit_cpu = "num_cpus" in opts and opts["num_cpus"] is not None
        hold = resources_of({**opts, "num_cpus": opts.get("num_cpus", 0) if explicit_cpu else 0})
        placement = resources_of({**opts, "num_cpus": opts["num_cpus"] if explicit_cpu else 1})
        lifetime = opts.get("lifetime")
        if lifetime not in (None, "detached", "non_detached"):
            raise ValueError("lifetime must be None, 'detached' or 'non_detached'")
        name = opts.get("name") or ""
        namespace = opts.get("namespace") or cw.namespace
        if opts.get("get_if_exists") and not name:
            raise ValueError("get_if_exists=True requires a name")
        max_pending = opts.get("max_pending_calls", -1)
        if not isinstance(max_pending, int) or isinstance(max_pending, bool) or (max_pending < 1 and max_pending != -1):
            raise ValueError(f"max_pending_calls must be -1 (no limit) or a positive int, got {max_pending!r}")
        prepared = prepare(cw, args, kwargs, f"actor {self.__name__}")
        base_env = cw.runtime_env_vars
        from spindle._core.runtime_env import resolver_of

        env_spec = resolver_of(cw).spec_for(opts.get("runtime_env"))[1]
        spec = pb.ActorSpec(
            actor_id=_ids.new_id(), class_blob=self._blob, class_name=self.__name__, args=prepared.args,
            placement=pb.Resources(amounts=placement), hold=pb.Resources(amounts=hold),
            strategy=strategy_of(opts.get("scheduling_strategy"), opts, placement), max_restarts=int(opts.get("max_restarts", 0)),
            max_task_retries=int(opts.get("max_task_retries", 0)),
            max_concurrency=int(opts.get("max_concurrency") or (1000 if is_async else 1)),
            is_async=is_async, name=name, namespace=namespace, detached=lifetime == "detached",
            job_id=cw.job_id, owner_address=cw.address, env_vars={**base_env, **env_vars_of(opts)},
            methods_blob=cloudpickle.dumps(methods), method_meta_blob=cloudpickle.dumps(meta),
            concurrency_groups_blob=cloudpickle.dumps(groups), runtime_env=env_spec, max_pending_calls=max_pending)
        if cw.executor is not None:  # made by a worker: it dies with that worker (a driver's die with its job)
            spec.owner_worker_id, spec.owner_node_id = cw.worker_id, cw.node_id
        # constructor arguments that are refs: registered now (DEPENDENCIES_UNREADY), placed once they are ready
        deps_pending = bool(prepared.deps)
        if name or spec.detached:  # a taken name is refused right here, as in Ray; a detached actor outlives us
            info = cw.actors.create(spec, bool(opts.get("get_if_exists")), deps_pending)
            if info.actor_id != spec.actor_id:
                return handle_from_info(info)
        else:
            cw.actors.create_async(spec, deps_pending)
        if deps_pending:
            cw.actors.create_when_ready(spec, prepared)
        if not spec.detached:
            actor_scope.created(spec.actor_id)
        return ActorHandle(spec.actor_id, self.__name__, methods, spec.max_task_retries, meta, max_pending)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        """A lazy actor creation for a DAG (``spindle.dag``): created when the DAG is executed."""
        from spindle.dag.class_node import ClassNode

        return ClassNode(self, args, kwargs, {})


def concurrency_groups_of(groups: Any, meta: MethodMeta) -> dict[str, int]:
    """Validate ``concurrency_groups={"io": 2, ...}`` and the groups methods name (Ray's rules)."""
    if groups is None:
        groups = {}
    if not isinstance(groups, dict):
        raise TypeError(f"concurrency_groups must be a dict of group name to max concurrency, got {groups!r}")
    out: dict[str, int] = {}
    for name, n in groups.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"concurrency_groups[{name!r}] must be a positive int, got {n!r}")
        out[str(name)] = n
    for method_name, (_, group) in meta.items():
        if group and group not in out:
            raise ValueError(f"Method {method_name!r} uses concurrency group {group!r}, which is not defined in "
                             f"the actor's concurrency_groups ({sorted(out) or 'none'}).")
    return out
