"""A caller's connection to one actor: where it lives, the stream to it, and what a broken stream means.

Split out of ``actor_client.py`` (which creates actors, queues and sends calls, and completes
them) because the connection's life is its own state machine: ask the head where the actor is
(bounded lookups, giving up only after the head has been unreachable for a while), stream calls to
its worker, and when the stream breaks, retry the calls in flight that ``max_task_retries`` allows
and, once the head says whether the actor restarted or died, fail the others with
ActorUnavailableError or ActorDiedError. Functions take the ``ActorClient`` whose lock they share.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cloudpickle
import grpc

from spindle import _actor_death
from spindle._core import args as _args
from spindle._core.actor_local_stream import LocalCall, LocalOut, open_stream
from spindle._proto import pb, rpc
from spindle._rpc.channels import batched
from spindle.exceptions import ActorUnavailableError

if TYPE_CHECKING:
    from spindle._core.actor_client import ActorClient

HEAD_UNREACHABLE_S = float(os.environ.get("SPINDLE_HEAD_UNREACHABLE_S", "60"))
# GetActor lookups one process keeps waiting at the head at once. Each waits there (up to 2 s) on one of the head's
# RPC threads; a burst of 1,000 new actors made 1,000 such waits, which held every head thread, so its heartbeats
# and actor starts queued behind them and creation crawled. Lookups beyond this wait here, in creation order.
LOOKUPS = 16


@dataclass
class ActorCall:
    spec: pb.TaskSpec
    prepared: _args.PreparedArgs
    retries_left: int
    ready: bool = False
    error: pb.ObjectValue | None = None
    cancelled: bool = False  # cancel() while in flight: its result, whatever it is, reads TaskCancelledError


@dataclass
class Conn:
    actor_id: bytes
    max_task_retries: int
    state: str = "CONNECTING"  # CONNECTING, ALIVE, DEAD
    incarnation: int = -1
    queue: collections.deque[ActorCall] = field(default_factory=collections.deque)
    inflight: dict[bytes, ActorCall] = field(default_factory=dict)
    out: Any = None
    death: pb.ObjectValue | None = None
    seq: int = 0
    node_id: str = ""  # where the stream goes (the actor's node at connect time)
    worker_address: str = ""
    call: Any = None
    doomed: list[ActorCall] = field(default_factory=list)  # died in flight, no retries: fail once we know why
    release_when_idle: bool = False  # its handles are gone (actor_scope): end it once no call is pending
    restarting: bool = False  # the head reported it RESTARTING since the stream broke (see _flush)


def connect_loop(client: ActorClient, conn: Conn) -> None:
    cw = client.cw
    delay = 0.02
    unreachable_since: float | None = None
    why = client.registered(conn.actor_id)
    if why:
        _mark_dead(client, conn, pb.ActorInfo(death_text=f"The actor could not be created: {why}."))
        return
    while not client.closed:
        try:
            with client._lookups:
                info = cw.head().GetActor(pb.GetActorRequest(actor_id=conn.actor_id, wait_alive_s=2.0,
                                                             after_incarnation=max(conn.incarnation, 0)),
                                          metadata=cw.md, timeout=30)
            unreachable_since = None
        except grpc.RpcError as e:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > HEAD_UNREACHABLE_S:
                _mark_dead(client, conn, pb.ActorInfo(death_text=(
                    f"The head at {cw.head_address} has been unreachable for {HEAD_UNREACHABLE_S:.0f} s "
                    f"({e.code().name}); the actor's state is unknown.")))
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        if not info.found or info.state == "DEAD":
            _mark_dead(client, conn, info)
            return
        if info.state == "RESTARTING" and conn.state == "CONNECTING":
            with client.lock:
                conn.restarting = True
            _fail_doomed(client, conn, info, restarted=True)
            client._flush(conn)
            continue
        if info.state != "ALIVE" or info.incarnation < max(conn.incarnation, 0):
            # still the incarnation whose stream just broke: the head has not heard of its death
            # yet (the agent reports it asynchronously); connecting to it again would lose calls
            continue
        if info.incarnation >= conn.incarnation:  # it restarted: the calls lost in flight are known dead
            _fail_doomed(client, conn, info, restarted=True)
        if _serve(client, conn, info):
            delay = 0.02
        else:
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

def _serve(client: ActorClient, conn: Conn, info: pb.ActorInfo) -> bool:
    """Stream calls to the actor until the stream breaks; False if it never connected."""
    import queue

    fs = open_stream(client.cw, info)
    out: Any
    if fs is not None:  # the submitting thread writes calls itself (see _rpc.local_stream)
        out, call = LocalOut(fs, conn, client), LocalCall(fs)
    else:
        out = queue.SimpleQueue()
        stub = client.cw.channels.stub(info.worker_address, rpc.CoreWorkerStub)
        call = stub.PushTasks(batched(out), metadata=client.cw.md)
    with client.lock:
        conn.out = out
        conn.state = "ALIVE"
        conn.restarting = False
        conn.incarnation = info.incarnation
        conn.node_id, conn.call = info.node_id, call
        conn.worker_address = info.worker_address
    client._flush(conn)
    got_any = False
    try:
        for batch in call:
            if not got_any and conn.doomed:  # the same incarnation answers: it was the connection that broke
                _fail_doomed(client, conn, info, restarted=False)
            got_any = True
            if batch.logs:
                client.cw.emit_log(batch.logs)
            for r in batch.results:
                client._on_result(conn, r)
            if fs is not None and out.buf is not None:
                with client.lock:
                    out.flush()
    except (grpc.RpcError, OSError):
        pass
    out.put(None)
    _stream_broke(client, conn, info)
    return got_any

def _stream_broke(client: ActorClient, conn: Conn, info: pb.ActorInfo) -> None:
    failed: list[ActorCall] = []
    with client.lock:
        conn.state = "CONNECTING"
        conn.incarnation = info.incarnation + 1
        retry: list[ActorCall] = []
        for c in conn.inflight.values():
            if c.retries_left != 0:
                c.retries_left -= 1 if c.retries_left > 0 else 0
                retry.append(c)
            else:
                failed.append(c)
        conn.inflight.clear()
        conn.queue.extendleft(reversed(retry))
        conn.doomed.extend(failed)  # failed by _connect_loop once the head says what happened

def _fail_doomed(client: ActorClient, conn: Conn, info: pb.ActorInfo, restarted: bool) -> None:
    """Fail the calls that died in flight, with the head's verdict on the actor (restarted or dead)."""
    with client.lock:
        doomed, conn.doomed = conn.doomed, []
    if not doomed:
        return
    if info.state == "DEAD":
        err = _death_value(client, info, conn.actor_id)
    elif restarted:
        err = unavailable(client, conn, f"The actor's worker process died while running this call and the actor "
                                      f"is restarting (restart {info.num_restarts}); set max_task_retries to "
                                      "retry such calls")
    else:
        err = unavailable(client, conn, "the connection to the actor broke while it ran this call (set "
                                      "max_task_retries to retry such calls)")
    for c in doomed:
        client._complete_error(c, err)

def unavailable(client: ActorClient, conn: Conn, why: str) -> pb.ObjectValue:
    return client.cw.error_value(b"", ActorUnavailableError(why, conn.actor_id))

def _death_value(client: ActorClient, info: pb.ActorInfo, actor_id: bytes) -> pb.ObjectValue:
    cause = cloudpickle.loads(info.death_cause) if info.death_cause else None
    exc = _actor_death.died_error(info.actor_id or actor_id, info.spec.class_name, info.spec.name, info.spec.namespace,
                                  info.worker_address, info.death_text, cause)
    return client.cw.error_value(b"", exc)

def _mark_dead(client: ActorClient, conn: Conn, info: pb.ActorInfo) -> None:
    death = _death_value(client, info, conn.actor_id)
    with client.lock:
        conn.state = "DEAD"
        conn.death = death
        pending = list(conn.inflight.values()) + conn.doomed
        conn.inflight.clear()
        conn.doomed = []
    for c in pending:
        client._complete_error(c, conn.death)
    client._flush(conn)
