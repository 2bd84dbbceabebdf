"""Task events as columns: a burst goes out and comes back complete and in order; refused batches are counted."""

from __future__ import annotations

import grpc
import pytest

from spindle._core import task_events
from spindle._event_columns import decode, encode
from spindle._head.state.store import ObservedState
from spindle._proto import pb


def burst(n: int) -> list[tuple]:  # type: ignore[type-arg]
    """n tasks' events as reporters record them: submissions with resources, ends here carrying their start,
    failures, actor calls."""
    out = []
    for i in range(n):
        tid = i.to_bytes(16, "big")
        actor = b"" if i % 3 else (i % 7).to_bytes(16, "big")
        kind = "ACTOR_TASK" if actor else "NORMAL_TASK"
        name = f"f{i % 5}"
        job = (i % 2).to_bytes(4, "big")
        out.append((tid, "PENDING_NODE_ASSIGNMENT", 1000 + i, name, kind, job, actor, "", "",
                    (("CPU", 1.0),) if i % 2 else {"CPU": 0.5, "GPU": 1.0}, False, 0))
        if i % 11 == 0:
            out.append((tid, "FAILED", 3000 + i, name, kind, job, actor, "TASK_EXECUTION_EXCEPTION",
                        f"Traceback ...\nKeyError: {i}", None, True, 2000 + i))
        else:
            out.append((tid, "FINISHED", 3000 + i, name, kind, job, actor, "", "", None, True, 2000 + i))
    return out


def test_a_burst_of_events_comes_back_from_the_wire_complete_and_in_order() -> None:
    events = burst(4000)
    wire = encode(events, "node-1", "worker-1", 42, dropped=3).SerializeToString()
    batch = pb.TaskEventBatch.FromString(wire)
    decoded = decode(batch.columns)
    expected = [(tid.hex(), state, t, name, kind, job.hex(), actor.hex(), "node-1" if here else "",
                 "worker-1" if here else "", 42 if here else 0, etype, emsg, dict(res) if res else {}, start)
                for tid, state, t, name, kind, job, actor, etype, emsg, res, here, start in events]
    assert batch.dropped == 3 and decoded == expected and len(decoded) == 2 * 4000


def test_a_batch_of_only_submissions_or_only_ends_here_names_the_reporter_only_where_the_task_ran() -> None:
    events = burst(6)
    submissions = decode(encode(events[0::2], "n", "w", 9).columns)
    ends = decode(encode(events[1::2], "n", "w", 9).columns)
    assert {e[7:10] for e in submissions} == {("", "", 0)} and {e[7:10] for e in ends} == {("n", "w", 9)}
    assert [e[13] for e in ends] == [2000 + i for i in range(6)] and {e[13] for e in submissions} == {0}


def test_a_task_that_starts_and_ends_between_two_reports_is_one_end_event_carrying_its_start() -> None:
    sent: list[pb.TaskEventBatch] = []
    events = task_events.TaskEvents(sent.append, lambda: "n", "w", 1, interval_s=0)  # no thread: flush by hand
    events.enabled = True
    a, b, c = b"a" * 16, b"b" * 16, b"c" * 16
    events.running(a, "f", b"", b"")
    events.running(b, "g", b"", b"\x07" * 16)  # interleaved (an async actor)
    events.finished(a, "f", b"", b"")
    events.finished(c, "h", b"", b"", "WORKER_DIED", "gone", ran_here=False)  # its owner's word: no start
    events.flush()
    got = [(e[0], e[1], e[3], e[4], e[13] > 0) for e in decode(sent[-1].columns)]
    assert got == [(a.hex(), "FINISHED", "f", "NORMAL_TASK", True), (c.hex(), "FAILED", "h", "NORMAL_TASK", False),
                   (b.hex(), "RUNNING", "g", "ACTOR_TASK", False)]  # b still runs: reported as RUNNING
    events.flush()  # b still runs: not reported again
    assert len(sent) == 1
    events.finished(b, "g", b"", b"\x07" * 16)
    events.flush()
    [(tid, state, start)] = [(e[0], e[1], e[13]) for e in decode(sent[-1].columns)]
    assert (tid, state) == (b.hex(), "FINISHED") and start > 0


def test_a_running_task_whose_report_failed_is_reported_running_again() -> None:
    sent: list[pb.TaskEventBatch] = []
    down = [True]

    def send(batch: pb.TaskEventBatch) -> None:
        if down[0]:
            raise Unreachable()
        sent.append(batch)

    events = task_events.TaskEvents(send, lambda: "n", "w", 1, interval_s=0)
    events.enabled = True
    events.submitted(b"s" * 16, "f", b"", (("CPU", 1.0),))
    events.running(b"r" * 16, "g", b"", b"")
    events.flush()  # the head is unreachable: both kept
    down[0] = False
    events.flush()
    assert [(e[0], e[1]) for e in decode(sent[-1].columns)] == [
        ((b"s" * 16).hex(), "PENDING_NODE_ASSIGNMENT"), ((b"r" * 16).hex(), "RUNNING")]


def test_the_head_merges_a_burst_into_one_finished_or_failed_row_per_task() -> None:
    state = ObservedState(max_tasks=10_000)
    state.report_tasks(encode(burst(3000), "node-1", "worker-1", 42, dropped=2))
    rows = state.tasks.newest_first()[::-1]
    assert [r.task_id for r in rows] == [i.to_bytes(16, "big").hex() for i in range(3000)]
    assert all(r.state == ("FAILED" if i % 11 == 0 else "FINISHED") for i, r in enumerate(rows))
    assert all(r.creation_time_ms == 1000 + i and r.start_time_ms == 2000 + i and r.end_time_ms == 3000 + i
               and r.worker_pid == 42 and r.node_id == "node-1" for i, r in enumerate(rows))
    assert rows[1].required_resources == {"CPU": 1.0} and rows[2].required_resources == {"CPU": 0.5, "GPU": 1.0}
    assert rows[3].actor_id == (3).to_bytes(16, "big").hex() and rows[3].type == "ACTOR_TASK"
    assert state.tasks.by_state() == {"FAILED": 273, "FINISHED": 2727} and state.tasks.dropped_events == 2
    assert state.tasks.current == {}


@pytest.mark.parametrize("damage, column", [
    (lambda c: c.state.pop(), "'state'"),
    (lambda c: c.name.append(0), "'name'"),
    (lambda c: c.resources.append(1), "'resources'"),
    (lambda c: c.strings.pop(), "past its table"),
    (lambda c: c.error_row.append(99), "error_row"),
])
def test_a_malformed_batch_is_refused_naming_what_is_wrong(damage, column) -> None:  # type: ignore[no-untyped-def]
    batch = encode(burst(10), "n", "w", 1)
    damage(batch.columns)
    with pytest.raises(ValueError, match=column):
        ObservedState().report_tasks(batch)


class Unreachable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


class Refused(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INVALID_ARGUMENT


def test_a_batch_the_head_refuses_is_dropped_and_counted_in_the_next_one() -> None:
    sent: list[pb.TaskEventBatch] = []
    refuse = [True]

    def send(batch: pb.TaskEventBatch) -> None:
        if refuse[0]:
            raise Refused()
        sent.append(batch)

    events = task_events.TaskEvents(send, lambda: "n", "w", 1, interval_s=0)  # no thread: flush by hand
    events.enabled = True
    for i in range(7):
        events.running(i.to_bytes(16, "big"), "f", b"", b"")
    events.flush()  # refused: not kept for a resend
    refuse[0] = False
    events.running(b"\x01" * 16, "g", b"", b"")
    events.flush()
    [batch] = sent
    assert batch.dropped == 7 and list(batch.columns.task_id) == [b"\x01" * 16]
