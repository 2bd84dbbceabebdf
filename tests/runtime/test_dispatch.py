"""The pure dispatch policy: which leased worker gets the next task, and when nothing may wait behind a task."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from spindle import _dispatch as d


@dataclass
class FakeSlot:
    queued: int = 0
    exclusive: bool = False
    head_since: float = 0.0


def test_an_unmeasured_function_runs_alone() -> None:
    assert d.depth(None) == 1


def test_depth_covers_the_target_batch_time_and_is_capped() -> None:
    assert d.depth(0.001) == 5  # 5 ms of 1 ms tasks
    assert d.depth(0.0025) == 2
    assert d.depth(0.004) == 1  # not short enough to share a worker
    assert d.depth(0.3) == 1
    assert d.depth(0.000001) == d.MAX_DEPTH
    assert d.depth(0.0) == d.MAX_DEPTH


def test_estimates_are_a_moving_average_of_measured_runs() -> None:
    assert d.observe(None, 0.5) == 0.5
    assert d.observe(1.0, 0.0) == pytest.approx(0.8)
    assert d.observe(0.001, 0.001) == pytest.approx(0.001)


def test_a_stalled_run_raises_the_estimate_to_at_least_the_stall_threshold() -> None:
    assert d.stalled_estimate(0.0001, 0.06) == 0.06
    assert d.stalled_estimate(None, 0.01) == d.STALL_S
    assert d.stalled_estimate(2.0, 0.06) == 2.0
    assert d.depth(d.stalled_estimate(0.0001, 0.06)) == 1


def test_an_idle_worker_takes_any_task() -> None:
    assert d.room(FakeSlot(queued=0), 1, now=10.0) == 1
    assert d.room(FakeSlot(queued=0), 64, now=10.0) == 64


def test_nothing_queues_behind_a_task_that_runs_alone() -> None:
    assert d.room(FakeSlot(queued=1, exclusive=True, head_since=10.0), 64, now=10.0) == 0


def test_a_task_that_must_run_alone_never_joins_a_busy_worker() -> None:
    assert d.room(FakeSlot(queued=1, head_since=10.0), 1, now=10.0) == 0


def test_short_tasks_pipeline_up_to_their_depth() -> None:
    assert d.room(FakeSlot(queued=3, head_since=10.0), 5, now=10.001) == 2
    assert d.room(FakeSlot(queued=5, head_since=10.0), 5, now=10.001) == 0
    assert d.room(FakeSlot(queued=9, head_since=10.0), 5, now=10.001) == 0


def test_nothing_queues_behind_a_task_that_has_run_past_the_stall_threshold() -> None:
    assert d.room(FakeSlot(queued=1, head_since=0.0), 64, now=d.STALL_S) == 63
    assert d.room(FakeSlot(queued=1, head_since=0.0), 64, now=d.STALL_S + 0.001) == 0


def test_a_task_that_must_run_alone_gets_the_first_idle_worker() -> None:
    slots = [FakeSlot(queued=2, head_since=10.0), FakeSlot(queued=0), FakeSlot(queued=0)]
    assert d.pick(slots, 1, now=10.0) == 1


def test_short_tasks_fill_a_worker_already_pipelining_before_taking_an_idle_one() -> None:
    slots = [FakeSlot(queued=0), FakeSlot(queued=1, exclusive=True, head_since=10.0),
             FakeSlot(queued=8, head_since=10.0), FakeSlot(queued=2, head_since=10.0)]
    assert d.pick(slots, 8, now=10.0) == 3  # slot 2 is full, slot 1 runs alone
    assert d.pick(slots, 64, now=10.0) == 2
    assert d.pick(slots, 2, now=10.0) == 0  # every busy worker is full at this depth: the idle one


def test_short_tasks_do_not_join_a_worker_whose_task_has_stalled() -> None:
    slots = [FakeSlot(queued=2, head_since=0.0), FakeSlot(queued=0)]
    assert d.pick(slots, 64, now=d.STALL_S + 0.001) == 1


def test_pick_finds_nothing_when_every_worker_is_busy_with_long_or_exclusive_work() -> None:
    slots = [FakeSlot(queued=1, exclusive=True, head_since=10.0), FakeSlot(queued=3, head_since=9.0)]
    assert d.pick(slots, 64, now=10.0) == -1
    assert d.pick([], 64, now=10.0) == -1
    assert d.pick([FakeSlot(queued=2, head_since=10.0)], 1, now=10.0) == -1


def test_leases_wanted_cover_the_backlog_at_the_current_depth_up_to_the_cap() -> None:
    assert d.leases_wanted(queued=2, held=0, task_depth=1, cap=256) == 2
    assert d.leases_wanted(queued=100, held=2, task_depth=64, cap=256) == 4
    assert d.leases_wanted(queued=1000, held=0, task_depth=1, cap=256) == 256


def test_a_worker_gives_back_waiting_tasks_only_once_its_task_has_stalled() -> None:
    assert not d.should_give_back(running_for=d.STALL_S, waiting=10)
    assert d.should_give_back(running_for=d.STALL_S + 0.001, waiting=1)
    assert not d.should_give_back(running_for=100.0, waiting=0)


def test_retries_back_off_exponentially_and_are_capped() -> None:
    assert [d.retry_delay(n) for n in range(0, 6)] == [0.0, 0.0, 0.1, 0.2, 0.4, 0.8]
    assert d.retry_delay(50) == d.RETRY_MAX_S
