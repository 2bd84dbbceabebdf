"""The head schedulers' loop (``_head/wake_loop``): its pace (what each wait is given) with exact expectations.

The loop runs on a real thread against a real Event that also writes down the timeout of each wait;
a round ends the loop by raising ``_Stop`` (a BaseException: the loop survives only Exceptions).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from spindle._head import wake_loop

MIN, MAX = 0.001, 0.005


class _Stop(BaseException):
    pass


class RecordingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def rounds(*outcomes: bool | Exception) -> Callable[[], bool]:
    """A round function giving these outcomes in turn (an Exception is raised), then ending the loop."""
    left = list(outcomes)

    def round_() -> bool:
        if not left:
            raise _Stop
        outcome = left.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return round_


def run_until_stopped(wake: threading.Event, round_: Callable[[], bool], busy: Callable[[], bool] | None = None,
                      wake_resets: bool = False) -> None:
    def target() -> None:
        try:
            wake_loop.run(wake, round_, what="test round", min_s=MIN, max_s=MAX, busy=busy, wake_resets=wake_resets)
        except _Stop:
            pass
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the loop did not reach its last round"


def test_without_progress_the_wait_doubles_up_to_the_max_and_progress_brings_it_back() -> None:
    wake = RecordingEvent()
    run_until_stopped(wake, rounds(False, False, False, False, True, False))
    assert wake.timeouts == [MIN, 2 * MIN, 4 * MIN, MAX, MAX, MIN, 2 * MIN]


def test_a_wake_up_brings_the_backoff_back_only_when_asked_to() -> None:
    def waking(event: threading.Event) -> Callable[[], bool]:
        inner = rounds(False, False, False)
        calls = [0]

        def round_() -> bool:
            calls[0] += 1
            if calls[0] == 2:
                event.set()  # something happened during the second round: the next wait returns at once
            return inner()
        return round_

    resets = RecordingEvent()
    run_until_stopped(resets, waking(resets), wake_resets=True)
    assert resets.timeouts == [MIN, 2 * MIN, 4 * MIN, MIN]
    keeps = RecordingEvent()
    run_until_stopped(keeps, waking(keeps))
    assert keeps.timeouts == [MIN, 2 * MIN, 4 * MIN, MAX]


def test_while_busy_says_no_the_loop_waits_for_a_wake_up_and_polls_again_once_it_says_yes() -> None:
    wake = RecordingEvent()
    busy = [False, False, True, True]  # e.g. a queue empty, then a start in flight that may come back refused

    def round_() -> bool:
        if len(wake.timeouts) == 1:
            wake.set()  # the wake-up the idle wait needs to go on
        return inner()
    inner = rounds(False, False, False)
    wake.set()
    run_until_stopped(wake, round_, busy=lambda: busy.pop(0), wake_resets=True)  # as the actor scheduler
    assert wake.timeouts == [None, None, MIN, 2 * MIN]


def test_a_round_that_raises_is_logged_and_the_next_round_runs(caplog: pytest.LogCaptureFixture) -> None:
    wake = RecordingEvent()
    with caplog.at_level(logging.ERROR, logger="spindle.head"):
        run_until_stopped(wake, rounds(RuntimeError("bad round"), True))
    assert [r.getMessage() for r in caplog.records] == ["test round failed"]
    assert wake.timeouts == [MIN, 2 * MIN, MIN]  # the failed round counted as no progress
