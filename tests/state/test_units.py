"""The state API's pure parts: query semantics, the task ring's merging and bounds, log tails."""

from __future__ import annotations

import os

import pytest
from multidict import MultiDict

from spindle._agent import log_files, node_stats
from spindle._head.state import query
from spindle._head.state.tasks import Event, TaskTable, exception_name


def q(**kw: str) -> query.Query:
    return query.parse(MultiDict(kw))


def test_filters_arrive_as_rays_repeated_parameters_and_are_applied_in_order() -> None:
    params = MultiDict([("filter_keys", "state"), ("filter_predicates", "="), ("filter_values", "RUNNING"),
                        ("filter_keys", "name"), ("filter_predicates", "!="), ("filter_values", "b"),
                        ("limit", "1"), ("detail", "true")])
    parsed = query.parse(params)
    assert parsed == query.Query((("state", "=", "RUNNING"), ("name", "!=", "b")), 1, True)
    rows = [{"state": "RUNNING", "name": "a"}, {"state": "RUNNING", "name": "b"}, {"state": "RUNNING", "name": "c"},
            {"state": "FINISHED", "name": "a"}]
    out = query.apply("things", rows, parsed)
    assert out == {"result": True, "msg": "", "data": {"result": {
        "total": 4, "num_after_truncation": 1, "num_filtered": 2, "result": [{"state": "RUNNING", "name": "a"}],
        "partial_failure_warning": "", "warnings": None}}}


def test_booleans_and_missing_values_compare_as_text() -> None:
    rows = [{"is_alive": True, "x": None}, {"is_alive": False, "x": "1"}]
    assert query.apply("w", rows, q(filter_keys="is_alive", filter_predicates="=", filter_values="True"))[
        "data"]["result"]["result"] == [{"is_alive": True, "x": None}]
    assert query.apply("w", rows, q(filter_keys="x", filter_predicates="=", filter_values=""))[
        "data"]["result"]["num_filtered"] == 1


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": "0"}, "limit=0 must be between 1 and 100000"),
    ({"limit": "ten"}, "limit='ten' is not an integer"),
    ({"detail": "maybe"}, "detail='maybe' is not a boolean"),
    ({"filter_keys": "a", "filter_predicates": "~", "filter_values": "b"}, "unsupported filter predicate '~'"),
    ({"filter_keys": "a"}, "must come in equal numbers (got 1, 0, 0)"),
])
def test_bad_query_parameters_are_refused_with_the_reason(params: dict[str, str], message: str) -> None:
    with pytest.raises(query.QueryError, match=None) as e:
        query.parse(MultiDict(params))
    assert message in str(e.value)


def test_filtering_by_an_unknown_column_names_the_known_ones() -> None:
    with pytest.raises(query.QueryError) as e:
        query.apply("tasks", [{"a": 1, "b": 2}], q(filter_keys="c", filter_predicates="=", filter_values="1"))
    assert str(e.value) == "cannot filter tasks by 'c': the columns are a, b"


def test_brief_listings_keep_only_rays_non_detail_columns() -> None:
    row = {"worker_id": "w", "pid": 1, "is_alive": True, "secret_extra": 5}
    assert query.apply("workers", [row], q())["data"]["result"]["result"] == [{"worker_id": "w", "is_alive": True,
                                                                                "pid": 1}]
    assert query.apply("workers", [row], q(detail="1"))["data"]["result"]["result"] == [row]


def ev(task: str, state: str, t: int, **kw: object) -> Event:
    return Event(task_id=task, state=state, time_ms=t, name=str(kw.pop("name", "f")), **kw)  # type: ignore[arg-type]


def test_events_of_one_task_from_driver_and_worker_merge_in_any_order() -> None:
    table = TaskTable(max_tasks=10, max_errors=10)
    table.merge([ev("t1", "FINISHED", 30, worker_id="w1", node_id="n1", worker_pid=7)])
    table.merge([ev("t1", "RUNNING", 20, worker_id="w1", node_id="n1", worker_pid=7),
                 ev("t1", "PENDING_NODE_ASSIGNMENT", 10, required_resources={"CPU": 1.0})])
    row = table.get("t1")
    assert row is not None
    assert (row.state, row.creation_time_ms, row.start_time_ms, row.end_time_ms) == ("FINISHED", 10, 20, 30)
    assert (row.node_id, row.worker_id, row.worker_pid, row.required_resources) == ("n1", "w1", 7, {"CPU": 1.0})
    assert table.summary() == {"f": {"func_or_class_name": "f", "type": "NORMAL_TASK", "state_counts": {"FINISHED": 1}}}
    assert table.current == {}


def test_a_retried_task_that_failed_then_succeeded_ends_finished_without_error() -> None:
    table = TaskTable(max_tasks=10, max_errors=10)
    table.merge([ev("t", "RUNNING", 1, worker_id="w"),
                 ev("t", "FAILED", 2, worker_id="w", error_type="TASK_EXECUTION_EXCEPTION",
                    error_message="Traceback\nValueError: x")])
    table.merge([ev("t", "RUNNING", 3, worker_id="w2"), ev("t", "FINISHED", 4, worker_id="w2")])
    row = table.get("t")
    assert row is not None and (row.state, row.error_type, row.worker_id) == ("FINISHED", None, "w2")
    assert table.by_state() == {"FINISHED": 1}
    assert [e["error_type"] for e in table.errors] == ["ValueError"]  # the failure stays in the error list


def test_the_worker_running_a_task_is_known_until_the_task_ends() -> None:
    table = TaskTable(max_tasks=10, max_errors=10)
    table.merge([ev("t", "RUNNING", 1, worker_id="w", name="slow")])
    assert table.current == {"w": ("t", "slow")}
    table.merge([ev("t", "FINISHED", 2, worker_id="w", name="slow")])
    assert table.current == {}


def test_a_task_first_seen_finished_gets_the_same_row_as_one_seen_running_first() -> None:
    fresh, stepwise = TaskTable(max_tasks=10, max_errors=10), TaskTable(max_tasks=10, max_errors=10)
    end = ev("t", "FINISHED", 30, worker_id="w", node_id="n", worker_pid=7, type="ACTOR_TASK", actor_id="a",
             job_id="j", start_time_ms=20, required_resources={"CPU": 1.0})
    fresh.merge([end])  # a new row and an end at once: merge's shortcut for the common case
    stepwise.merge([ev("t", "RUNNING", 20, worker_id="w", node_id="n", worker_pid=7, type="ACTOR_TASK",
                       actor_id="a", job_id="j", required_resources={"CPU": 1.0})])
    stepwise.merge([end])
    assert fresh.get("t") == stepwise.get("t")
    row = fresh.get("t")
    assert row is not None and (row.state, row.creation_time_ms, row.start_time_ms, row.end_time_ms) == (
        "FINISHED", 20, 20, 30)
    assert fresh.summary() == stepwise.summary() == {
        "f": {"func_or_class_name": "f", "type": "ACTOR_TASK", "state_counts": {"FINISHED": 1}}}


def test_a_task_evicted_from_the_ring_while_it_ran_stops_showing_as_running_when_it_ends() -> None:
    table = TaskTable(max_tasks=2, max_errors=2)
    table.merge([ev("slow", "RUNNING", 1, worker_id="w", name="slow")])
    table.merge([ev(f"t{i}", "FINISHED", 2, worker_id="other") for i in range(3)])  # pushes "slow" out
    assert table.get("slow") is None and table.current == {"w": ("slow", "slow")}
    table.merge([ev("slow", "FINISHED", 3, worker_id="w", name="slow")])
    assert table.current == {}


def test_the_ring_keeps_the_newest_tasks_and_the_counters_keep_every_task() -> None:
    table = TaskTable(max_tasks=3, max_errors=2)
    for i in range(5):
        table.merge([ev(f"t{i}", "FINISHED", i, name="g")])
    assert [r.task_id for r in table.newest_first()] == ["t4", "t3", "t2"]
    assert (table.total_seen, table.evicted) == (5, 2)
    assert table.summary()["g"]["state_counts"] == {"FINISHED": 5}


def test_errors_are_bounded_newest_first_with_the_exception_named() -> None:
    table = TaskTable(max_tasks=10, max_errors=2)
    for i in range(3):
        table.merge([ev(f"t{i}", "FAILED", i, error_type="TASK_EXECUTION_EXCEPTION",
                        error_message=f"Traceback (most recent call last):\n  x\nKeyError: {i}")])
    assert [(e["task_id"], e["error_type"], e["message"]) for e in table.errors] == [
        ("t2", "KeyError", "KeyError: 2"), ("t1", "KeyError", "KeyError: 1")]
    assert exception_name("boom\nmod.Custom_Error: why") == "mod.Custom_Error"
    assert exception_name("the worker died") == ""


def test_timeline_lists_the_last_started_tasks_in_start_order() -> None:
    table = TaskTable(max_tasks=10, max_errors=2)
    table.merge([ev("a", "RUNNING", 5), ev("b", "RUNNING", 3), ev("c", "PENDING_NODE_ASSIGNMENT", 1),
                 ev("d", "RUNNING", 9)])
    assert [t["task_id"] for t in table.timeline(2)] == ["a", "d"]


def test_the_last_lines_of_a_log_file_are_found_from_its_end(tmp_path: object) -> None:
    d = str(tmp_path)
    with open(os.path.join(d, "w.out"), "wb") as f:
        f.write(b"".join(b"line %d\n" % i for i in range(20000)))
    chunks = b"".join(log_files.read(d, "w.out", 3, follow=False, active=lambda: True))
    assert chunks == b"line 19997\nline 19998\nline 19999\n"
    assert b"".join(log_files.read(d, "w.out", 0, False, lambda: True)).count(b"\n") == 20000
    assert [f.filename for f in log_files.list_files(d, "*.out")] == ["w.out"]


@pytest.mark.parametrize("name", ["../etc/passwd", "", "a/b", ".."])
def test_log_names_with_paths_are_refused(tmp_path: object, name: str) -> None:
    with pytest.raises(log_files.LogError):
        list(log_files.read(str(tmp_path), name, 1, False, lambda: True))


def test_a_symlinked_log_file_is_not_followed(tmp_path: object) -> None:
    d = str(tmp_path)
    os.symlink("/etc/hostname", os.path.join(d, "link.out"))
    with pytest.raises(log_files.LogError):
        list(log_files.read(d, "link.out", 1, False, lambda: True))
    assert log_files.list_files(d) == []


def test_memory_is_read_from_proc_meminfo() -> None:
    used, total = node_stats.proc_meminfo()
    assert 0 < used < total


def test_task_events_go_out_in_one_batch_and_wait_while_the_head_is_unreachable() -> None:
    import grpc

    from spindle._core import task_events
    from spindle._proto import pb

    sent: list[pb.TaskEventBatch] = []
    failing = [True]

    class Down(grpc.RpcError):
        pass

    def send(batch: pb.TaskEventBatch) -> None:
        if failing[0]:
            raise Down()
        sent.append(batch)

    events = task_events.TaskEvents(send, lambda: "node-1", "worker-1", 42, interval_s=0)  # no thread: flush by hand
    events.enabled = True
    events.submitted(b"t1", "f", b"j", {"CPU": 1.0})
    events.running(b"t1", "f", b"j", b"")
    events.finished(b"t2", "g", b"j", b"", "WORKER_DIED", "its worker died", ran_here=False)
    events.flush()
    assert sent == []
    failing[0] = False
    events.running(b"t3", "h", b"j", b"")
    events.flush()
    [batch] = sent
    from spindle._event_columns import decode

    events = decode(batch.columns)
    # (what still runs goes after what was recorded: a start is noted aside until the task ends)
    assert [(e[0], e[1], e[8], e[7], e[9]) for e in events] == [
        (b"t1".hex(), "PENDING_NODE_ASSIGNMENT", "", "", 0), (b"t2".hex(), "FAILED", "", "", 0),
        (b"t1".hex(), "RUNNING", "worker-1", "node-1", 42), (b"t3".hex(), "RUNNING", "worker-1", "node-1", 42)]
    assert events[1][10:12] == ("WORKER_DIED", "its worker died")
    assert dict(events[0][12]) == {"CPU": 1.0} and batch.dropped == 0


def test_task_events_beyond_the_buffer_are_dropped_and_counted() -> None:
    import grpc

    from spindle._core import task_events
    from spindle._proto import pb

    sent: list[pb.TaskEventBatch] = []
    up = [False]

    def send(batch: pb.TaskEventBatch) -> None:
        if not up[0]:
            raise grpc.RpcError()
        sent.append(batch)

    events = task_events.TaskEvents(send, lambda: "n", "w", 1, interval_s=0)
    events.enabled = True
    for i in range(task_events.MAX_BUFFERED + 5):
        events.finished(i.to_bytes(4, "big"), "f", b"", b"")
    events.flush()
    up[0] = True
    events.flush()
    assert len(sent[0].columns.task_id) == task_events.MAX_BUFFERED and sent[0].dropped == 5
    assert sent[0].columns.task_id[0] == (5).to_bytes(4, "big")


def test_a_batch_larger_than_the_ring_merges_each_task_whole_and_keeps_the_newest() -> None:
    table = TaskTable(max_tasks=3, max_errors=2)
    batch = [ev(f"t{i}", "PENDING_NODE_ASSIGNMENT", i, name="g") for i in range(5)]
    batch += [ev(f"t{i}", "FINISHED", 10 + i, name="g", worker_id="w", start_time_ms=5 + i) for i in range(5)]
    table.merge(batch)
    assert [(r.task_id, r.state, r.creation_time_ms, r.start_time_ms, r.end_time_ms)
            for r in table.newest_first()] == [("t4", "FINISHED", 4, 9, 14), ("t3", "FINISHED", 3, 8, 13),
                                               ("t2", "FINISHED", 2, 7, 12)]
    assert (table.total_seen, table.evicted) == (5, 2)
    assert table.summary()["g"]["state_counts"] == {"FINISHED": 5}  # not 5 pending as well
    assert table.counts == {("g", "NORMAL_TASK"): {"PENDING_NODE_ASSIGNMENT": 0, "FINISHED": 5}}


def test_counters_beyond_the_function_limit_go_under_other_and_stay_consistent(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from spindle._head.state import tasks

    monkeypatch.setattr(tasks, "MAX_FUNCTIONS", 2)
    table = TaskTable(max_tasks=10, max_errors=2)
    table.merge([ev(f"t{i}", "PENDING_NODE_ASSIGNMENT", i, name=f"f{i}") for i in range(4)])
    table.merge([ev(f"t{i}", "FINISHED", 10 + i, name=f"f{i}") for i in range(4)])
    assert table.by_state() == {"FINISHED": 4}
    assert table.summary()["<other>"]["state_counts"] == {"FINISHED": 2}


def test_a_task_given_up_on_for_a_lost_object_gets_rays_error_type_for_that_loss() -> None:
    from spindle._core.task_events import exception_error_type
    from spindle.exceptions import ObjectLostError, ObjectReconstructionFailedError, OwnerDiedError

    assert exception_error_type(ObjectLostError("ab", "gone")) == "OBJECT_LOST"
    assert exception_error_type(ObjectReconstructionFailedError("ab", "no retries left")) == \
        "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED"
    assert exception_error_type(OwnerDiedError("ab", "owner exited")) == "OWNER_DIED"
