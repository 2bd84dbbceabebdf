"""What the task submitter keeps per task, per lease and per queue, and the small helpers it needs.

Split from ``submitter`` so that file holds only the flow (submit, dispatch, results, cancel);
these are plain records and pure functions: option parsing into resources and a scheduling
strategy (shared with actor creation), and turning a task's outcome into the error its refs raise.
"""

from __future__ import annotations

import collections
import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cloudpickle

from spindle import _labels
from spindle._core import args as _args
from spindle._core import generators as _gen
from spindle._proto import pb
from spindle.exceptions import RayTaskError, TaskCancelledError

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker


@dataclass
class Task:
    spec: pb.TaskSpec
    fn_blob: bytes
    prepared: _args.PreparedArgs
    retries_left: int
    retry_exceptions: Any
    key: tuple[Any, ...]
    cancelled: bool = False
    lease: Lease | None = None
    attempts: int = 0  # retries so far (for the backoff)
    reconstructions: int = 0  # times re-run because its output died with a node


@dataclass
class Lease:
    lease_id: bytes
    worker_address: str
    agent_address: str
    key: tuple[Any, ...]
    out: queue.SimpleQueue[pb.TaskBatch | None] = field(default_factory=queue.SimpleQueue)
    inflight: dict[bytes, Task] = field(default_factory=dict)
    sent_functions: set[bytes] = field(default_factory=set)
    idle_since: float = 0.0
    dead: bool = False
    draining: bool = False  # its node drains: no new tasks go there, it goes back once idle
    exclusive: bool = False  # runs a task that must not have others queued behind it
    head_since: float = 0.0  # when the first task in ``inflight`` started (estimated)
    call: Any = None  # the PushTasks stream, cancelled when the head declares the node dead
    answered: bool = False  # the worker sent something: its stream was accepted (the lease was not taken back)

    @property
    def queued(self) -> int:
        return len(self.inflight)


@dataclass
class KeyQueue:
    key: tuple[Any, ...]
    resources: dict[str, float]
    strategy: pb.SchedulingStrategy
    tasks: collections.deque[Task] = field(default_factory=collections.deque)
    leases: list[Lease] = field(default_factory=list)
    requesting: int = 0
    warned: bool = False
    failing_since: float = 0.0  # when lease requests started failing (0: the last one went through)
    failure_warned: float = 0.0  # when the driver last said so
    runtime_env: pb.RuntimeEnvSpec = field(default_factory=pb.RuntimeEnvSpec)  # dedicated workers, if key set


def cancelled_error(task: Task) -> TaskCancelledError:
    tid = task.spec.task_id.hex()
    return TaskCancelledError(tid, f"Task {task.spec.name!r} ({tid}) was cancelled.")


def fail_returns(cw: CoreWorker, spec: pb.TaskSpec, err: pb.ObjectValue) -> None:
    """A task or actor call failed with ``err``: its stream ends (a generator) and each of its refs raises ``err``."""
    if spec.generator:
        _gen.finished(spec.task_id, err)
    for rid in spec.return_ids:
        ov = pb.ObjectValue()
        ov.CopyFrom(err)
        ov.object_id = rid
        cw.store.put(rid, ov)


def load_error(blob: bytes, text: str, name: str) -> tuple[BaseException | None, bytes]:
    """A task's pickled exception and the blob to store; one this process can't unpickle becomes a RayTaskError."""
    try:
        return cloudpickle.loads(blob), blob
    except Exception as e:  # noqa: BLE001 - e.g. its class is not importable here, or __init__ takes other args
        err = RayTaskError(name, f"{text}\nThe exception could not be unpickled here ({type(e).__name__}: {e}); "
                                 "it is raised as a RayTaskError carrying its original traceback.")
        return err, cloudpickle.dumps(err, protocol=5)


def resources_of(opts: dict[str, Any]) -> dict[str, float]:
    res: dict[str, float] = {}
    cpus = opts.get("num_cpus", 1)
    if cpus:
        res["CPU"] = float(cpus)
    if opts.get("num_gpus"):
        res["GPU"] = float(opts["num_gpus"])
    if opts.get("memory"):
        res["memory"] = float(opts["memory"])
    for k, v in (opts.get("resources") or {}).items():
        if k in ("CPU", "GPU"):
            raise ValueError(f"Use num_cpus/num_gpus instead of resources={{{k!r}: ...}}")
        res[k] = float(v)
    return res


def strategy_of(s: Any, opts: dict[str, Any] | None = None, request: dict[str, float] | None = None
                ) -> pb.SchedulingStrategy:
    """The wire strategy for the ``scheduling_strategy`` option (with ``opts``: also placement groups)."""
    if opts is not None:
        from spindle._core.pg_client import strategy_for

        pg = strategy_for(opts, request or {})
        if pg is not None:
            return pg
    selector = _labels.parse_selector((opts or {}).get("label_selector"))
    out = _strategy_of(s)
    if selector or hasattr(s, "hard"):  # label_selector / NodeLabelSchedulingStrategy
        hard = selector + (_labels.from_strategy_map(s.hard, "hard") if hasattr(s, "hard") else [])
        out.labels_hard = _labels.dumps(hard)
        if hasattr(s, "soft") and isinstance(s.soft, dict):
            out.labels_soft = _labels.dumps(_labels.from_strategy_map(s.soft, "soft"))
    return out


def _strategy_of(s: Any) -> pb.SchedulingStrategy:
    if hasattr(s, "hard"):  # NodeLabelSchedulingStrategy
        return pb.SchedulingStrategy(kind="NODE_LABEL")
    if s is None or s == "DEFAULT":
        return pb.SchedulingStrategy(kind="DEFAULT")
    if s == "SPREAD":
        return pb.SchedulingStrategy(kind="SPREAD")
    if hasattr(s, "placement_group"):  # PlacementGroupSchedulingStrategy: see pg_client.strategy_for
        return pb.SchedulingStrategy(kind="DEFAULT")
    node_id = getattr(s, "node_id", None)
    if node_id is not None:
        return pb.SchedulingStrategy(kind="NODE_AFFINITY", node_id=node_id, soft=bool(getattr(s, "soft", False)))
    raise ValueError(f"Unknown scheduling_strategy {s!r}: use 'DEFAULT', 'SPREAD', NodeAffinitySchedulingStrategy, "
                     "NodeLabelSchedulingStrategy or PlacementGroupSchedulingStrategy")
