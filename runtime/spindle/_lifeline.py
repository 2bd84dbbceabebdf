"""Children that die with their parent, without forking a process that runs gRPC.

Spindle's processes (head and agent under a driver or ``spindle start --block``, workers under their
agent) must not outlive the process that started them. Linux's PR_SET_PDEATHSIG does that, but it
must be set *in the child*. Setting it from a ``preexec_fn`` forces ``subprocess`` to use a plain
``fork()`` of the parent, and a parent with live gRPC threads forked that way runs gRPC's fork
handlers in the child, whose poller thread then dies on the epoll fd that ``close_fds`` closed
(``epoll_wait error: Bad file descriptor`` and SIGABRT in about 1 in 30-130 starts). So the parent
passes its pid in ``SPINDLE_PARENT_PID`` (keeping vfork/posix_spawn, which runs no handlers), and
the child calls ``die_with_parent()`` first thing: it sets the signal, then checks that the parent
is still the one that started it (it may have died before the signal was armed).

PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so parents start such
children from a thread that lives as long as they do (the main thread, or the agent's spawner).
"""

from __future__ import annotations

import ctypes
import os
import signal

ENV = "SPINDLE_PARENT_PID"
PR_SET_PDEATHSIG = 1


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child that must die with this process."""
    return {**env, ENV: str(os.getpid())}


def die_with_parent() -> None:
    """In a child started with ``child_env``: get SIGKILL when the parent dies (exit now if it already has)."""
    want = os.environ.pop(ENV, "")  # not inherited by our own children: they get their own
    if not want:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != want:  # the parent died before the signal was armed
        os._exit(1)
