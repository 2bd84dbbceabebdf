"""The Ray-compatible module-level API: init, shutdown, get, put, wait, cancel, kill, get_actor, ...

``wait`` lives in ``waiting``, ``nodes``/``cluster_resources``/``available_resources`` in
``cluster_info``; both are importable from here as before.
"""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from spindle import _local_cluster
from spindle._core import context as _context
from spindle._core.cluster_info import available_resources as available_resources
from spindle._core.cluster_info import cluster_resources as cluster_resources
from spindle._core.cluster_info import nodes as nodes
from spindle._core.object_ref import ObjectRef
from spindle._core.waiting import _as_list
from spindle._core.waiting import wait as wait
from spindle._rpc.net import routable_ip

if TYPE_CHECKING:  # the client's gRPC side is imported on first use, after local processes are spawned
    from spindle.actor import ActorHandle

log = logging.getLogger("spindle")

_state: dict[str, Any] = {"local": None, "watch": None}
_lock = threading.RLock()

NODE_WAIT_S = float(os.environ.get("SPINDLE_NODE_WAIT_S", "30"))



class ClientContext:
    """What ``init()`` returns (Ray returns a context with the cluster's addresses)."""

    def __init__(self, address: str, node_id: str, namespace: str):
        self.address_info = {"address": address, "gcs_address": address, "node_id": node_id}
        self.namespace = namespace

    def __getitem__(self, key: str) -> Any:
        return self.address_info[key]

    def __enter__(self) -> ClientContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()


def is_initialized() -> bool:
    return _context.maybe_core() is not None and _context.maybe_core().mode == "driver"  # type: ignore[union-attr]


def _recorded_cluster() -> tuple[str, str] | None:
    """The cluster `spindle start` recorded on this machine, trusted only if the record is ours and private."""
    from spindle import _sessions

    try:
        _sessions.root()
        data = _sessions.read_trusted_json(_sessions.address_file())
    except _sessions.UnsafeTempDirError as e:
        raise ConnectionError(f"{e} (it is the record 'spindle start' leaves for init(address=\"auto\")).") from None
    except OSError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("address"), str):
        return None
    return data["address"], str(data.get("token", ""))


def _resolve_address(address: str | None) -> tuple[str | None, str]:
    token = os.environ.get("SPINDLE_TOKEN", "")
    if address in (None, "", "local"):
        env_addr = os.environ.get("SPINDLE_ADDRESS") or os.environ.get("RAY_ADDRESS")
        if address is None and env_addr and env_addr not in ("local",):
            return _resolve_address(env_addr)
        return None, token
    if address == "auto":
        env_addr = os.environ.get("SPINDLE_ADDRESS")
        if env_addr:
            return env_addr, token
        rec = _recorded_cluster()
        if rec is None:
            raise ConnectionError("Could not find any running Spindle cluster: set SPINDLE_ADDRESS=host:port "
                                  "(and SPINDLE_TOKEN), or start one on this machine with 'spindle start --head'.")
        return rec[0], token or rec[1]
    for scheme in ("spindle://", "ray://"):
        if address.startswith(scheme):
            address = address[len(scheme):]
    if not token:
        rec = _recorded_cluster()
        if rec is not None and rec[0] == address:
            token = rec[1]
    return address, token


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict[str, float] | None = None, namespace: str | None = None,
         ignore_reinit_error: bool = False, log_to_driver: bool = True, runtime_env: dict[str, Any] | None = None,
         object_store_memory: int | None = None, _system_config: dict[str, Any] | None = None,
         include_dashboard: bool | None = None, dashboard_port: int | None = None,
         logging_config: Any = None, **_ignored: Any) -> ClientContext:
    """Connect to a cluster, or start an embedded local one (head + node agent) when no address is given.

    ``object_store_memory`` (bytes) bounds the local node's shared-memory store; objects above it spill to
    disk (``_system_config={"object_spilling_config": ...}`` as in Ray picks the directory).
    """
    with _lock:
        if is_initialized():
            if ignore_reinit_error:
                cw = _context.core()
                return ClientContext(cw.head_address, cw.node_id, cw.namespace)
            raise RuntimeError("Maybe you called spindle.init twice by accident? This error can be suppressed by "
                               "passing in 'ignore_reinit_error=True' or by calling 'spindle.shutdown()' first.")
        from spindle import _runtime_env

        _runtime_env.validate(runtime_env)  # a bad runtime_env fails before anything starts
        from spindle._logging_config import LoggingConfig

        if logging_config is not None and not isinstance(logging_config, LoggingConfig):
            raise TypeError(f"logging_config must be a spindle.LoggingConfig, got {type(logging_config).__name__}")
        head_address, token = _resolve_address(address)
        local = None
        if head_address is None:
            port = -1 if include_dashboard is False else (dashboard_port or 8265)
            pending = _local_cluster.spawn(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                           object_store_memory=object_store_memory,
                                           spill_dir=_spill_dir(_system_config),
                                           dashboard_port=port, dashboard_port_fallback=dashboard_port is None,
                                           one_process=True)
            import grpc  # noqa: F401 - while the head and agent boot

            from spindle._core.core_worker import CoreWorker  # noqa: F401
            local = pending.wait_ready()
            head_address, token, agent_address, node_id = local.head_address, local.token, local.agent_address, local.node_id
            ip = "127.0.0.1"
            if local.dashboard_address:
                # the link carries the token in its fragment, which the browser never sends: the page signs in
                # with it once (like Jupyter's token links)
                print(f"Started a local Spindle cluster. View the dashboard at {local.dashboard_address}/#token={token}\n"
                      f"  Job API (Ray-compatible) at {local.dashboard_address}", file=sys.stderr, flush=True)
        else:
            if num_cpus is not None or num_gpus is not None or resources or object_store_memory:
                raise ValueError("When connecting to an existing cluster, num_cpus, num_gpus, resources and "
                                 "object_store_memory must not be provided: they are set by 'spindle start' on each "
                                 "node.")
            if not token:
                raise ConnectionError(f"No cluster token for {head_address}: set SPINDLE_TOKEN to the cluster's token "
                                      "(printed by 'spindle start --head', or in the cluster's Secret).")
            ip = routable_ip(head_address)
            agent_address, node_id = _pick_local_node(head_address, token, ip)
        import grpc

        from spindle._core.core_worker import CoreWorker
        from spindle._proto import pb

        cw = CoreWorker(mode="driver", token=token, head_address=head_address, agent_address=agent_address,
                        node_id=node_id, ip=ip, log_to_driver=log_to_driver)
        job_env = json.loads(os.environ.get("SPINDLE_JOB_ENV_VARS") or "{}")  # set for a submitted job's driver
        job_env.update((runtime_env or {}).get("env_vars") or {})
        cw.runtime_env_vars = {str(k): str(v) for k, v in job_env.items()}
        if logging_config is not None:  # the driver now, the job's tasks and actors as they start
            from spindle import _logging_config

            logging_config._apply()
            cw.runtime_env_vars[_logging_config.ENV_VAR] = json.dumps(logging_config.to_dict())
        from spindle._core import runtime_env as _rt_env

        job_rt = {**json.loads(os.environ.get(_rt_env.JOB_ENV_VAR) or "{}"), **(runtime_env or {})}
        cw.namespace = namespace or os.urandom(8).hex()
        registration = pb.RegisterJobRequest(driver_address=cw.address, namespace=cw.namespace, pid=os.getpid(),
                                             node_ip=ip)
        try:
            reply = cw.head().RegisterJob(registration, metadata=cw.md, timeout=30, wait_for_ready=True)
        except grpc.RpcError as e:
            cw.shutdown()
            if local is not None:
                local.stop()
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise ConnectionError(f"The cluster at {head_address} refused the token: set SPINDLE_TOKEN to the "
                                      "cluster's token.") from None
            raise ConnectionError(f"Cannot reach the Spindle head at {head_address}: {e.code().name}") from None
        cw.job_id = reply.job_id
        cw.session = reply.session
        try:  # the job's working_dir/py_modules are uploaded now, once for all its tasks
            _rt_env.resolver_of(cw).set_job_env(job_rt)
        except Exception:
            cw.shutdown()
            if local is not None:
                local.stop()
            raise
        _context.set_core(cw)
        _state["local"] = local
        from spindle._core.job_watch import JobWatch

        _state["watch"] = JobWatch(cw, registration)
        return ClientContext(head_address, node_id, cw.namespace)


def _spill_dir(system_config: dict[str, Any] | None) -> str | None:
    """The directory of Ray's ``object_spilling_config`` (a JSON string or dict of type "filesystem")."""
    cfg = (system_config or {}).get("object_spilling_config")
    if not cfg:
        return None
    spec = json.loads(cfg) if isinstance(cfg, str) else cfg
    if spec.get("type", "filesystem") != "filesystem":
        raise ValueError(f"object_spilling_config type {spec.get('type')!r} is not supported: use \"filesystem\"")
    path = (spec.get("params") or {}).get("directory_path")
    if isinstance(path, list):
        path = path[0] if path else None
    return str(path) if path else None


def _pick_local_node(head_address: str, token: str, ip: str) -> tuple[str, str]:
    """The node agent on this machine if there is one (same IP), else any node's agent and no local store."""
    import grpc

    from spindle._proto import pb, rpc
    from spindle._rpc.channels import TOKEN_KEY

    ch = grpc.insecure_channel(head_address)
    deadline = time.monotonic() + NODE_WAIT_S  # a cluster that is still booting gets a moment to register a node
    try:
        while True:
            try:
                view = rpc.HeadStub(ch).GetClusterView(pb.Empty(), metadata=((TOKEN_KEY, token),), timeout=30,
                                                       wait_for_ready=True)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise ConnectionError(f"The cluster at {head_address} refused the token: set SPINDLE_TOKEN to "
                                          "the cluster's token.") from None
                raise ConnectionError(f"Cannot reach the Spindle head at {head_address} ({e.code().name}); is it "
                                      "running? Start one with 'spindle start --head'.") from None
            alive = [n for n in view.nodes if n.alive]
            if alive or view.nodes or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        ch.close()
    if not view.nodes:
        raise ConnectionError(f"The Spindle cluster at {head_address} has no live nodes yet: start a node agent "
                              f"with 'spindle start --address {head_address}'.")
    if not alive:  # every node died: connect anyway (status, actors, a node may join); tasks wait a while
        log.warning("every node of the Spindle cluster at %s is dead (%d known); tasks wait for a node to join",
                    head_address, len(view.nodes))
        return "", ""
    for n in alive:
        if n.ip == ip:
            return n.address, n.node_id
    return alive[0].address, ""


def shutdown() -> None:
    """Disconnect; when init() started a local cluster, stop it and remove its processes and store files."""
    with _lock:
        cw = _context.maybe_core()
        if cw is None or cw.mode != "driver":
            return
        watch = _state.get("watch")
        if watch is not None:
            watch.stop()
        cw.shutdown()
        _context.set_core(None)
        local = _state.get("local")
        _state["local"] = None
        if local is not None:
            local.stop()


atexit.register(shutdown)


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    """Block until the value(s) are ready and return them (order kept); raise the task's error if it failed."""
    refs, single = _as_list(object_refs, "get")
    values = _context.core_or_init().get(refs, timeout)
    return values[0] if single else values


def put(value: Any, **_ignored: Any) -> ObjectRef:
    return _context.core_or_init().put(value)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel a task: a queued one never runs; a running one gets KeyboardInterrupt (``force``: its worker is
    killed); ``recursive`` also cancels the tasks it submitted. Its refs raise TaskCancelledError."""
    from spindle._core.generators import ObjectRefGenerator

    if isinstance(object_ref, ObjectRefGenerator):  # cancels the generator task: its stream stops
        object_ref = object_ref.completed()
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef or ObjectRefGenerator, got {type(object_ref).__name__}")
    from spindle._core.cancel import cancel as cancel_ref

    cancel_ref(_context.core_or_init(), object_ref, force, recursive)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    from spindle.actor import ActorHandle

    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill() expects an actor handle, got {type(actor).__name__}")
    _context.core_or_init().actors.kill(actor._actor_id, no_restart)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    if not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    from spindle._proto import pb
    from spindle.actor import handle_from_info

    cw = _context.core_or_init()
    ns = namespace if namespace is not None else _context.RuntimeContext(cw).namespace
    watch = _state.get("watch")
    if watch is not None:
        watch.wait_attached(30)
    info = cw.head().GetActor(pb.GetActorRequest(name=name, namespace=ns), metadata=cw.md, timeout=60,
                              wait_for_ready=True)
    if not info.found or info.state == "DEAD":
        raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{ns}'. This could be because "
                         "1. You are trying to look up a named actor you didn't create. 2. The named actor died. "
                         "3. You did not use a namespace matching the namespace of the actor.")
    return handle_from_info(info)


def get_runtime_context() -> _context.RuntimeContext:
    return _context.RuntimeContext(_context.core_or_init())


def get_gpu_ids() -> list[Any]:
    """The GPU ids assigned to the running task or actor (empty in a driver or without GPUs)."""
    _context.core_or_init()
    from spindle._core.accelerators import gpu_ids

    return gpu_ids()


def timeline(filename: str | None = None) -> list[dict[str, Any]] | None:
    """Recent task executions as Chrome trace events (chrome://tracing, Perfetto); written to ``filename`` if given."""
    from spindle._core.timeline import chrome_trace

    events = chrome_trace(_context.core())
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None


def remote(*args: Any, **options: Any) -> Any:
    """``@remote`` / ``@remote(num_cpus=..., ...)`` on a function or a class."""
    from spindle.actor import ActorClass
    from spindle.remote_function import RemoteFunction

    def make(target: Any) -> Any:
        if isinstance(target, type):
            return ActorClass(target, options)
        if inspect.iscoroutinefunction(target):
            raise ValueError("'async def' should not be used for remote tasks. You can wrap the async function "
                             "with `asyncio.run(f())`, or use an async actor method instead.")
        if callable(target):
            return RemoteFunction(target, options)
        raise TypeError("The @remote decorator must be applied to either a function or a class.")

    if len(args) == 1 and not options and callable(args[0]):
        return make(args[0])
    if args:
        raise TypeError("The @remote decorator takes keyword options only, e.g. @remote(num_cpus=2)")
    return make
