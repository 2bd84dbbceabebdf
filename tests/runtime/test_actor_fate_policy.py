"""The head's actor-start policy (``_head/actor_fate``): a StartActor reply and the report of its worker's exit
give the same outcome in either order (pure functions, exact expectations)."""

from __future__ import annotations

import pytest

from spindle._head.actor_fate import ExitReport, ReplyKind, on_exit_report, on_start_reply
from spindle._scheduling import actor_restart_decision

CRASH = ExitReport("worker died", intended=False, worker_id="w1")


def test_an_exit_reported_while_the_start_of_that_incarnation_is_in_flight_is_deferred_to_the_reply() -> None:
    assert on_exit_report("PENDING", 0, "", True, 0, "w1") == "defer"
    assert on_exit_report("RESTARTING", 3, "old", True, 3, "w1") == "defer"


def test_an_exit_of_a_running_actor_is_applied_and_one_of_another_worker_or_incarnation_is_ignored() -> None:
    assert on_exit_report("ALIVE", 2, "w1", False, 2, "w1") == "apply"
    assert on_exit_report("ALIVE", 2, "w1", False, 2, "") == "apply"  # its node died: no worker id
    assert on_exit_report("ALIVE", 2, "w1", False, 2, "w0") == "ignore"
    assert on_exit_report("ALIVE", 2, "w1", False, 1, "w1") == "ignore"
    assert on_exit_report("DEAD", 2, "w1", False, 2, "w1") == "ignore"
    assert on_exit_report("DEAD", 2, "w1", True, 2, "w1") == "ignore"


def test_an_exit_of_a_queued_actor_of_that_incarnation_is_applied() -> None:
    assert on_exit_report("PENDING", 0, "", False, 0, "w1") == "apply"


def test_a_start_reply_after_an_exit_of_its_worker_is_that_exit_not_a_running_actor() -> None:
    assert on_start_reply("PENDING", "ok", CRASH, "w1") == "exited"
    assert on_start_reply("RESTARTING", "ok", ExitReport("node died", False), "w1") == "exited"
    assert on_start_reply("PENDING", "retry", CRASH, "") == "exited"  # died in its constructor


def test_a_start_reply_for_another_worker_than_the_one_reported_dead_is_a_running_actor() -> None:
    assert on_start_reply("PENDING", "ok", CRASH, "w2") == "alive"


def test_start_replies_without_an_exit() -> None:
    assert on_start_reply("PENDING", "ok", None, "w1") == "alive"
    assert on_start_reply("PENDING", "retry", None, "") == "retry"
    assert on_start_reply("PENDING", "failed", None, "") == "dead"
    assert on_start_reply("PENDING", "failed", CRASH, "") == "dead"  # the constructor's error is the cause


def test_a_start_reply_for_an_actor_killed_meanwhile_stops_what_started() -> None:
    assert on_start_reply("DEAD", "ok", None, "w1") == "kill"
    assert on_start_reply("DEAD", "ok", CRASH, "w1") == "kill"
    assert on_start_reply("DEAD", "retry", None, "") == "forget"
    assert on_start_reply("DEAD", "failed", None, "") == "forget"


def _outcome(order: str, kind: ReplyKind, max_restarts: int) -> str:
    """Drive both events through the policy the way the head does; the actor's final verdict."""
    state, deferred, in_flight, verdict = "PENDING", None, True, ""

    def exit_arrives() -> None:
        nonlocal deferred, verdict
        v = on_exit_report(state, 0, "w1" if state == "ALIVE" else "", in_flight, 0, "w1")
        if v == "defer":
            deferred = CRASH
        elif v == "apply":
            verdict = actor_restart_decision(max_restarts, 0, intended=False)

    def reply_arrives() -> None:
        nonlocal state, in_flight, verdict
        in_flight = False
        v = on_start_reply(state, kind, deferred, "w1" if kind == "ok" else "")
        if v == "exited":
            verdict = actor_restart_decision(max_restarts, 0, intended=False)
        elif v == "alive":
            state = "ALIVE"
        elif v == "dead":
            state, verdict = "DEAD", "dead"

    for event in (exit_arrives, reply_arrives) if order == "exit first" else (reply_arrives, exit_arrives):
        event()
    return verdict


@pytest.mark.parametrize("max_restarts,expected", [(0, "dead"), (1, "restart"), (-1, "restart")])
def test_the_outcome_of_a_worker_dying_as_its_actor_starts_does_not_depend_on_which_message_comes_first(
        max_restarts: int, expected: str) -> None:
    assert _outcome("exit first", "ok", max_restarts) == expected
    assert _outcome("reply first", "ok", max_restarts) == expected


def test_a_failed_constructor_is_dead_in_either_order_never_restarted() -> None:
    assert _outcome("exit first", "failed", 5) == "dead"
    assert _outcome("reply first", "failed", 5) == "dead"
