"""Task events on the wire as columns: what keeps the dashboard's data off the hot path.

A reporter (driver or worker) keeps its events as plain tuples; once per batch ``encode`` turns them into one
``TaskEventColumns`` message: a packed array per field, every distinct string (function names, states, types)
and id (jobs, actors) once per batch, resource shapes once per batch. Building one protobuf message per event
cost ~30 us of the reporter's CPU (and the GIL its tasks need); a column costs a C-level ``extend`` and a dict
lookup per event. ``decode`` is the head's side: one tuple per event, in the batch's order, with ids as hex.
Shared by both sides, so it lives at the top of the package; pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spindle._proto import pb

# A reporter's event: (task_id, state, time_ms, name, type, job_id, actor_id, error_type, error_message,
# resources (a mapping or a tuple of (name, amount) pairs, or None), ran_here: the task ran in this process)
Event = tuple[bytes, str, int, str, str, bytes, bytes, str, str, Any, bool]

# What ``decode`` returns per event: (task_id hex, state, time_ms, name, type, job_id hex, actor_id hex,
# node_id, worker_id, worker_pid, error_type, error_message, resources dict, start_time_ms of a folded RUNNING or 0)
Decoded = tuple[str, str, int, str, str, str, str, str, str, int, str, str, Mapping[str, float], int]

_NO_RESOURCES: dict[str, float] = {}


def encode(events: Sequence[Event], node_id: str, worker_id: str, pid: int, dropped: int = 0) -> pb.TaskEventBatch:
    """One batch message for ``events`` (in order); node, worker and pid apply to the events that ran here."""
    batch = pb.TaskEventBatch(dropped=dropped)
    if not events:
        return batch
    task_ids, states, times, names, kinds, jobs, actors, etypes, emsgs, res, here = zip(*events, strict=True)
    starts: list[int] = []
    if "RUNNING" in states:
        events, starts = fold(events)
        task_ids, states, times, names, kinds, jobs, actors, etypes, emsgs, res, here = zip(*events, strict=True)
    strings: dict[str, int] = {}
    ids: dict[bytes, int] = {b"": 0}
    s, i = strings.setdefault, ids.setdefault
    c = batch.columns
    c.node_id, c.worker_id, c.worker_pid = node_id, worker_id, pid
    c.task_id.extend(task_ids)
    c.state.extend([s(v, len(strings)) for v in states])
    c.time_ms.extend(times)
    c.name.extend([s(v, len(strings)) for v in names])
    c.type.extend([s(v, len(strings)) for v in kinds])
    c.job.extend([i(v, len(ids)) for v in jobs])
    c.actor.extend([i(v, len(ids)) for v in actors])
    c.here.extend(here)
    if any(starts):
        c.start_ms.extend(starts)
    c.strings.extend(strings)
    c.ids.extend(ids)
    if any(etypes):
        for row, (etype, emsg) in enumerate(zip(etypes, emsgs, strict=True)):
            if etype:
                c.error_row.append(row)
                c.error_type.append(etype)
                c.error_message.append(emsg)
    if any(res):
        shapes: dict[tuple[tuple[str, float], ...], int] = {}
        c.resources.extend([shapes.setdefault(_shape(r), len(shapes) + 1) if r else 0 for r in res])
        for shape in shapes:
            c.resource_sets.add().amounts.update(dict(shape))
    return batch


def fold(events: Sequence[Event]) -> tuple[list[Event], list[int]]:
    """A task's RUNNING event followed directly by its end, both here, become one end event carrying the start
    time (the usual case in a worker: one event fewer per task for the head to merge). Returns the events and
    their start times (0 = none)."""
    out: list[Event] = []
    starts: list[int] = []
    for ev in events:
        if out and ev[10] and ev[1] in _ENDS:
            last = out[-1]
            if last[1] == "RUNNING" and last[0] == ev[0] and last[10]:
                out[-1] = ev
                starts[-1] = last[2]
                continue
        out.append(ev)
        starts.append(0)
    return out, starts


_ENDS = ("FINISHED", "FAILED")


def _shape(r: Mapping[str, float] | tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    return r if isinstance(r, tuple) else tuple(sorted(r.items()))


def decode(c: pb.TaskEventColumns) -> list[Decoded]:
    """The events of a columns message, in order; ValueError (naming the column) when it is malformed."""
    n = len(c.task_id)
    for column in ("state", "time_ms", "name", "type", "job", "actor", "here"):
        if len(getattr(c, column)) != n:
            raise ValueError(f"task event columns: {column!r} has {len(getattr(c, column))} values for {n} events")
    for column in ("resources", "start_ms"):
        if len(getattr(c, column)) not in (0, n):
            raise ValueError(f"task event columns: {column!r} has {len(getattr(c, column))} values for {n} events")
    if not len(c.error_row) == len(c.error_type) == len(c.error_message):
        raise ValueError("task event columns: error_row, error_type and error_message differ in length")
    strings = list(c.strings)
    ids = [v.hex() for v in c.ids]
    shapes = [dict(r.amounts) for r in c.resource_sets]
    errors = dict(zip(c.error_row, zip(c.error_type, c.error_message, strict=True), strict=True))
    node, worker, pid = c.node_id, c.worker_id, c.worker_pid
    resources = list(c.resources) or [0] * n
    starts = list(c.start_ms) or [0] * n
    try:
        # (lists first: iterating a list is several times cheaper than iterating a protobuf repeated field)
        out: list[Decoded] = [
            (tid.hex(), strings[st], t, strings[nm], strings[ty], ids[jb], ids[ac],
             node if here else "", worker if here else "", pid if here else 0, "", "",
             shapes[rs - 1] if rs else _NO_RESOURCES, start)
            for tid, st, t, nm, ty, jb, ac, here, rs, start in zip(list(c.task_id), list(c.state), list(c.time_ms),
                                                                   list(c.name), list(c.type), list(c.job),
                                                                   list(c.actor), list(c.here), resources, starts,
                                                                   strict=True)]
        for row, (etype, emsg) in errors.items():
            out[row] = out[row][:10] + (etype, emsg) + out[row][12:]  # type: ignore[assignment]
    except IndexError:
        raise ValueError("task event columns: an index points past its table (strings, ids, resource_sets or "
                         "the events)") from None
    return out
