"""What a StartActor reply and a worker-exit report do to an actor, in whichever order they arrive.

The head starts an actor with an asynchronous ``StartActor`` call to a node agent; the agent reports
the actor's worker exiting with a separate ``ReportWorkerExit`` call. The two travel on different
connections and threads, so a worker that dies right after its constructor returned can be reported
dead *before* the head has handled the reply saying it started. Handling the exit first used to
bump the actor to its next incarnation while its start was still in flight (so the restart was never
queued), and the reply then recorded it ALIVE at the dead worker's address: callers waited forever.

This pure policy makes the outcome independent of the order: an exit reported while the start of
that incarnation is in flight is remembered (``defer``) and applied when the reply arrives; a reply
for a worker known to be dead (or on a node found dead) is an exit, not a start. No I/O, no locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ExitVerdict = Literal["ignore", "defer", "apply"]
ReplyKind = Literal["ok", "failed", "retry"]  # started; constructor failed or exit_actor(); not started (busy...)
ReplyVerdict = Literal["alive", "exited", "dead", "kill", "forget", "retry"]


@dataclass(frozen=True)
class ExitReport:
    """A worker's exit, reported for an actor whose start was still in flight."""

    reason: str
    intended: bool
    worker_id: str = ""  # "" = whichever worker it had (its node died)


def on_exit_report(state: str, incarnation: int, worker_id: str, start_in_flight: bool,
                   reported_incarnation: int, reported_worker_id: str) -> ExitVerdict:
    """What the head does with a report that the worker of an actor (now in ``state``) exited.

    ``ignore``: it is dead already, or the report is about another incarnation or an older worker;
    ``defer``: its StartActor reply is still coming and decides what the exit means (remember it);
    ``apply``: restart it or mark it dead now (``actor_restart_decision``).
    """
    if state == "DEAD" or reported_incarnation != incarnation:
        return "ignore"
    if start_in_flight:
        return "defer"
    if state == "ALIVE" and worker_id and reported_worker_id and worker_id != reported_worker_id:
        return "ignore"  # a worker of this incarnation the head never recorded (a start it gave up on)
    return "apply"


def on_start_reply(state: str, kind: ReplyKind, deferred: ExitReport | None, reply_worker_id: str) -> ReplyVerdict:
    """What the head does when an actor's StartActor call (for its current incarnation) is answered.

    ``alive``: record it running; ``exited``: it started (or was being started) but its worker is
    gone: apply the exit (restart or death); ``dead``: its constructor failed or called exit_actor();
    ``kill``: it was killed meanwhile, stop the worker that just started; ``forget``: killed
    meanwhile and nothing runs; ``retry``: nothing started (busy, unreachable), queue it again.
    """
    if state == "DEAD":
        return "kill" if kind == "ok" else "forget"
    if kind == "failed":
        return "dead"  # a constructor error wins over the exit it causes (never restarted, as in Ray)
    if deferred is not None and (kind == "retry" or not deferred.worker_id or deferred.worker_id == reply_worker_id):
        return "exited"
    return "alive" if kind == "ok" else "retry"
