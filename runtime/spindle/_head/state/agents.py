"""What the head asks the node agents for on demand: their log files and the objects in their stores.

Logs stay on the node that wrote them; the head proxies a listing or a read (or a follow) over the agent's
gRPC channel, so one HTTP endpoint shows the logs of every machine. A task, an actor or a pid is resolved to
its worker's ``worker-<worker id>-<pid>.out`` (``.err`` with ``suffix=err``) on its node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from spindle._proto import pb, rpc

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

RPC_TIMEOUT_S = 10.0


class NotFound(Exception):
    """Unknown node, file, task, actor or pid: answered with 404 and this message."""


@dataclass(frozen=True)
class LogTarget:
    node_id: str
    filename: str


def _alive_agents(head: HeadState, node_id: str = "") -> list[tuple[str, str]]:
    with head.lock:
        if node_id:
            rec = head.nodes.get(node_id)
            if rec is None:
                known = ", ".join(head.nodes) or "none"
                raise NotFound(f"no node {node_id!r} in the cluster (nodes: {known})")
            if not rec.view.alive:
                raise NotFound(f"node {node_id} is dead: its logs went with it")
            return [(node_id, rec.info.address)]
        return [(nid, rec.info.address) for nid, rec in head.nodes.items() if rec.view.alive]


def node_of(head: HeadState, given: str) -> str:
    """The node id for a node id or a node IP ("" stays "")."""
    with head.lock:
        if not given or given in head.nodes:
            return given
        return next((nid for nid, r in head.nodes.items() if r.info.ip == given and r.view.alive), given)


def _stub(head: HeadState, address: str) -> rpc.NodeAgentStub:
    return rpc.NodeAgentStub(head.channels.get(address))


def category(filename: str) -> str:
    """Ray's log categories: worker_out, worker_err, head, agent, job_driver, misc."""
    if filename.startswith("worker-"):
        return "worker_err" if filename.endswith(".err") else "worker_out"
    if filename.startswith("head"):
        return "head"
    if filename.startswith("agent"):
        return "agent"
    if filename.startswith("job-driver") or filename.startswith("job_driver"):
        return "job_driver"
    return "misc"


def list_files(head: HeadState, node_id: str, glob: str = "") -> dict[str, list[str]]:
    """{category: [filenames]} of one node (Ray's ``/api/v0/logs`` result)."""
    [(nid, address)] = _alive_agents(head, node_id)
    files = _stub(head, address).ListLogs(pb.LogListRequest(glob=glob), metadata=head.channels.metadata,
                                          timeout=RPC_TIMEOUT_S).files
    out: dict[str, list[str]] = {}
    for f in files:
        out.setdefault(category(f.filename), []).append(f.filename)
    return out


def _find(head: HeadState, glob: str, node_id: str = "") -> LogTarget | None:
    for nid, address in _alive_agents(head, node_id):
        try:
            files = _stub(head, address).ListLogs(pb.LogListRequest(glob=glob), metadata=head.channels.metadata,
                                                  timeout=RPC_TIMEOUT_S).files
        except grpc.RpcError:
            continue
        if files:
            newest = max(files, key=lambda f: f.mtime)
            return LogTarget(nid, newest.filename)
    return None


def resolve(head: HeadState, params: Any) -> LogTarget:
    """The file a logs request means: ``node_id`` + ``filename``, or a ``task_id``, ``actor_id`` or ``pid``."""
    suffix = params.get("suffix", "out")
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix={suffix!r}: use out or err")
    node_id = node_of(head, params.get("node_id", "") or params.get("node_ip", ""))
    if params.get("filename"):
        if not node_id:
            with head.lock:
                heads = [nid for nid, r in head.nodes.items() if r.info.is_head and r.view.alive]
            if len(heads) != 1:
                raise ValueError("give node_id (or node_ip) with filename: `spindle list nodes` shows them")
            node_id = heads[0]
        return LogTarget(node_id, params["filename"])
    obs = head.observed
    if params.get("task_id"):
        with obs.lock:
            row = obs.tasks.get(params["task_id"])
            where = (row.node_id, row.worker_id) if row is not None else None
        if where is None:
            raise NotFound(f"no task {params['task_id']!r} among the recorded ones (`spindle list tasks`)")
        if not where[0] or not where[1]:
            raise NotFound(f"task {params['task_id']} has not started on a worker yet: it has no log")
        found = _find(head, f"worker-{where[1]}-*.{suffix}", where[0])
        if found is None:
            raise NotFound(f"the log of task {params['task_id']}'s worker is gone from node {where[0]}")
        return found
    if params.get("actor_id"):
        try:
            aid = bytes.fromhex(params["actor_id"])
        except ValueError:
            raise ValueError(f"actor_id={params['actor_id']!r} is not a hex actor id") from None
        with head.lock:
            rec = head.actors.get(aid)
            where = (rec.node_id, rec.worker_id) if rec is not None else None
        if where is None:
            raise NotFound(f"no actor {params['actor_id']!r} (`spindle list actors`)")
        if not where[1]:
            raise NotFound(f"actor {params['actor_id']} has no worker yet: it has no log")
        found = _find(head, f"worker-{where[1]}-*.{suffix}", where[0])
        if found is None:
            raise NotFound(f"the log of actor {params['actor_id']}'s worker is gone")
        return found
    if params.get("pid"):
        pid = params["pid"]
        if not str(pid).isdigit():
            raise ValueError(f"pid={pid!r} is not a process id")
        found = _find(head, f"worker-*-{pid}.{suffix}", node_id)
        if found is None:
            raise NotFound(f"no worker log for pid {pid}" + (f" on node {node_id}" if node_id else ""))
        return found
    raise ValueError("say which log: filename (with node_id), task_id, actor_id or pid")


def read(head: HeadState, target: LogTarget, lines: int, follow: bool) -> tuple[Any, Iterator[bytes]]:
    """(the call, to cancel it; the chunks). A missing file raises NotFound on the first chunk."""
    [(_, address)] = _alive_agents(head, target.node_id)
    call = _stub(head, address).ReadLog(pb.LogReadRequest(filename=target.filename, lines=lines, follow=follow),
                                        metadata=head.channels.metadata, timeout=None if follow else 60)

    def chunks() -> Iterator[bytes]:
        try:
            for c in call:
                yield c.data
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(e.details()) from None
            if e.code() != grpc.StatusCode.CANCELLED:
                raise

    return call, chunks()


def objects(head: HeadState, limit: int) -> tuple[list[dict[str, Any]], str]:
    """Objects in the nodes' stores (Ray's list_objects rows) and a warning naming nodes that did not answer."""
    obs = head.observed
    with obs.lock:
        by_address = {w.address: (w.pid, nid) for nid, u in obs.nodes.items() for w in u.workers if w.address}
    with head.lock:
        ips = {nid: rec.info.ip for nid, rec in head.nodes.items()}
        for job in head.jobs.values():
            by_address.setdefault(str(job.get("driver", "")), (int(job.get("pid") or 0), ""))
    rows: list[dict[str, Any]] = []
    failed = []
    for nid, address in _alive_agents(head):
        try:
            reply = _stub(head, address).ListObjects(pb.ObjectListRequest(limit=limit),
                                                     metadata=head.channels.metadata, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            failed.append(f"{nid[:8]} ({e.code().name})")
            continue
        for o in reply.objects:
            pid = by_address.get(o.owner_address, (None, ""))[0]
            rows.append({"object_id": o.object_id.hex(), "object_size": o.size,
                         "reference_type": "PINNED_IN_MEMORY" if not o.spilled else "SPILLED",
                         "node_id": nid, "ip": ips.get(nid, ""), "pid": pid, "task_status": "FINISHED",
                         "call_site": "disabled", "owner_address": o.owner_address, "spilled": o.spilled})
    warning = f"nodes that did not answer: {', '.join(failed)}" if failed else ""
    return rows, warning
