"""Task events on the wire as columns: what keeps the dashboard's data off the hot path.

A reporter (driver or worker) keeps its events end to end in one flat list; once per batch ``encode_flat`` turns them into one
``TaskEventColumns`` message: a packed array per field, every distinct string (function names, states, types)
and id (jobs, actors) once per batch, resource shapes once per batch. Building one protobuf message per event
cost ~30 us of the reporter's CPU (and the GIL its tasks need); a column costs a C-level ``extend`` and a dict
lookup per event. ``decode`` is the head's side: one tuple per event, in the batch's order, with ids as hex.
Shared by both sides, so it lives at the top of the package; pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

from spindle._proto import pb

# A reporter's event: (task_id, state, time_ms, name, type, job_id, actor_id, error_type, error_message,
# resources (a mapping or a tuple of (name, amount) pairs, or None), ran_here: the task ran in this process,
# start_ms: an end event's start time when the task ran here (0 = unknown))
Event = tuple[bytes, str, int, str, str, bytes, bytes, str, str, Any, bool, int]

# What ``decode`` returns per event: (task_id hex, state, time_ms, name, type, job_id hex, actor_id hex,
# node_id, worker_id, worker_pid, error_type, error_message, resources dict, start_time_ms or 0)
Decoded = tuple[str, str, int, str, str, str, str, str, str, int, str, str, Mapping[str, float], int]

_NO_RESOURCES: dict[str, float] = {}


FIELDS = 12  # values per event in a flat buffer (``Event``'s fields, event after event)


def encode(events: Sequence[Event], node_id: str, worker_id: str, pid: int, dropped: int = 0) -> pb.TaskEventBatch:
    """One batch message for ``events`` (in order); node, worker and pid apply to the events that ran here."""
    return encode_flat([v for ev in events for v in ev], node_id, worker_id, pid, dropped)


def encode_flat(flat: Sequence[Any], node_id: str, worker_id: str, pid: int, dropped: int = 0) -> pb.TaskEventBatch:
    """``encode`` for events laid end to end in one flat list (``FIELDS`` values each), as a reporter records them.

    Column-wise and in C where it can be (slices with a step, ``dict.fromkeys``, ``map``): a column is one slice of
    the flat list, so no tuple is built or transposed per event, and the reporting thread holds the GIL the
    process's tasks need for as short a time as possible."""
    batch = pb.TaskEventBatch(dropped=dropped)
    if not flat:
        return batch
    if len(flat) % FIELDS:
        raise ValueError(f"a flat event buffer holds {FIELDS} values per event, not {len(flat)} values in all")
    task_ids, states, times, names, kinds, jobs, actors, etypes, emsgs, res, here, starts = (
        flat[k::FIELDS] for k in range(FIELDS))
    strings = _index(dict.fromkeys(states) | dict.fromkeys(names) | dict.fromkeys(kinds))
    ids = _index(dict.fromkeys((b"",)) | dict.fromkeys(jobs) | dict.fromkeys(actors))  # b"" is 0
    s, i = strings.__getitem__, ids.__getitem__
    c = batch.columns
    c.node_id, c.worker_id, c.worker_pid = node_id, worker_id, pid
    c.task_id.extend(task_ids)
    c.state.extend(list(map(s, states)))
    c.time_ms.extend(times)
    c.name.extend(list(map(s, names)))
    c.type.extend(list(map(s, kinds)))
    c.job.extend(list(map(i, jobs)))
    c.actor.extend(list(map(i, actors)))
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
        try:
            distinct = dict.fromkeys(res)
        except TypeError:  # mappings: as sorted pairs
            res = [_shape(r) if r else None for r in res]
            distinct = dict.fromkeys(res)
        shapes: dict[Any, int] = {}
        for r in distinct:
            if r:
                shapes[r] = len(c.resource_sets) + 1
                c.resource_sets.add().amounts.update(dict(r))
            else:
                shapes[r] = 0
        c.resources.extend(list(map(shapes.__getitem__, res)))
    return batch


def _index(distinct: dict[Any, None]) -> dict[Any, int]:
    return {v: n for n, v in enumerate(distinct)}


def _shape(r: Mapping[str, float] | tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    return r if isinstance(r, tuple) else tuple(sorted(r.items()))


def decode(c: pb.TaskEventColumns) -> list[Decoded]:
    """The events of a columns message, in order; ValueError (naming the column) when it is malformed."""
    return list(events(c))


def events(c: pb.TaskEventColumns) -> Iterator[Decoded]:
    """``decode``, lazily: the head merges straight from the columns (``zip`` reuses each tuple the merge lets
    go of, so a batch costs no object per event). The whole batch is checked first: ValueError (naming the
    column) when it is malformed, before anything is merged."""
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
    shapes = [_NO_RESOURCES, *(dict(r.amounts) for r in c.resource_sets)]
    for column, table in (("state", strings), ("name", strings), ("type", strings), ("job", ids), ("actor", ids),
                          ("resources", shapes), ("error_row", range(n))):
        values = getattr(c, column)
        if len(values) and max(values) >= len(table):
            raise ValueError(f"task event columns: an index in {column!r} points past its table (strings, ids, "
                             "resource_sets or the events)")
    node, worker, pid = c.node_id, c.worker_id, c.worker_pid
    here = list(c.here)
    s, i = strings.__getitem__, ids.__getitem__
    nodes: Iterable[str]
    workers: Iterable[str]
    pids: Iterable[int]
    if all(here):
        nodes, workers, pids = repeat(node, n), repeat(worker, n), repeat(pid, n)
    elif not any(here):
        nodes, workers, pids = repeat("", n), repeat("", n), repeat(0, n)
    else:
        nodes = [node if h else "" for h in here]
        workers = [worker if h else "" for h in here]
        pids = [pid if h else 0 for h in here]
    etypes: Iterable[str] = repeat("", n)
    emsgs: Iterable[str] = repeat("", n)
    if len(c.error_row):
        etypes, emsgs = [""] * n, [""] * n
        for row, etype, emsg in zip(c.error_row, c.error_type, c.error_message, strict=True):
            etypes[row], emsgs[row] = etype, emsg
    # column by column, in C (map, zip): several times cheaper than a Python expression per event
    return zip(map(bytes.hex, list(c.task_id)), map(s, list(c.state)), list(c.time_ms), map(s, list(c.name)),
               map(s, list(c.type)), map(i, list(c.job)), map(i, list(c.actor)), nodes, workers, pids, etypes, emsgs,
               map(shapes.__getitem__, list(c.resources)) if len(c.resources) else repeat(_NO_RESOURCES, n),
               list(c.start_ms) if len(c.start_ms) else repeat(0, n), strict=False)  # (repeat: endless; checked)
