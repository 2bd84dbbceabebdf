"""The worker pool's decisions (``_agent.pool_policy``): start a worker for a caller that found none idle; stop the
idle zygote."""

from __future__ import annotations

from spindle._agent.pool_policy import MAX_PARALLEL_FORKS, should_start_worker, zygote_should_stop


def test_a_task_arriving_while_the_warm_workers_boot_waits_for_them_instead_of_starting_another() -> None:
    assert should_start_worker(waiting=1, starting=2, forks=False) is False
    assert should_start_worker(waiting=10, starting=2, forks=False) is False
    assert should_start_worker(waiting=1, starting=1, forks=False) is False


def test_a_caller_with_nothing_idle_or_booting_starts_one_fresh_interpreter() -> None:
    assert should_start_worker(waiting=1, starting=0, forks=False) is True
    assert should_start_worker(waiting=5, starting=0, forks=False) is True


def test_with_a_live_zygote_each_waiting_caller_gets_a_fork_up_to_the_parallel_limit() -> None:
    assert should_start_worker(waiting=3, starting=2, forks=True) is True
    assert should_start_worker(waiting=3, starting=3, forks=True) is False
    assert should_start_worker(waiting=1, starting=1, forks=True) is False
    assert should_start_worker(waiting=100, starting=MAX_PARALLEL_FORKS - 1, forks=True) is True
    assert should_start_worker(waiting=100, starting=MAX_PARALLEL_FORKS, forks=True) is False


def test_the_zygote_is_stopped_only_with_no_live_fork_no_fork_asked_and_idle_for_the_whole_timeout() -> None:
    assert zygote_should_stop(live_forks=0, pending_forks=0, idle_for=60.0, idle_s=60.0) is True
    assert zygote_should_stop(live_forks=0, pending_forks=0, idle_for=59.9, idle_s=60.0) is False
    assert zygote_should_stop(live_forks=1, pending_forks=0, idle_for=600.0, idle_s=60.0) is False
    assert zygote_should_stop(live_forks=0, pending_forks=1, idle_for=600.0, idle_s=60.0) is False
