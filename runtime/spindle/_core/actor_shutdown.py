"""Ending an actor's worker gracefully, as Ray does: shutdown hook, ``__del__``, ``atexit``, then exit.

A plain task worker the agent no longer needs gets the same SIGTERM and exits the same way (it has no
hooks), sending its buffered task events first. An actor ends gracefully when it calls ``exit_actor()``, when ``__ray_terminate__`` reaches it, or
when its agent sends SIGTERM (every handle went out of scope, see ``_core.actor_scope``). Then, as in
Ray: calls already running finish, calls still queued never run (their callers get ActorDiedError
when the process is gone), the actor's ``__ray_shutdown__`` runs, the instance is dropped (its
``__del__`` runs), then the ``atexit`` handlers, and the process exits with code 0 (which the agent
reports as an intended exit). ``kill()`` is a SIGKILL and runs none of this. A hook that hangs
cannot keep the process: it exits after ``SPINDLE_ACTOR_GRACEFUL_SHUTDOWN_S`` regardless.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import gc
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spindle._core.executor import Executor

GRACE_S = float(os.environ.get("SPINDLE_ACTOR_GRACEFUL_SHUTDOWN_S", "30"))


def install(ex: Executor) -> None:
    """SIGTERM (from the agent) asks for a graceful exit; called on the main thread."""

    def on_term(signum: int, frame: Any) -> None:
        request(ex)

    signal.signal(signal.SIGTERM, on_term)


def request(ex: Executor) -> None:
    """Stop taking calls; the main loop wakes and runs ``run``. Safe from any thread or a signal handler."""
    if ex.exit_requested:
        return
    ex.exit_requested = True
    ex.exiting = True
    threading.Thread(target=_watchdog, daemon=True, name="spindle-exit-watchdog").start()
    ex.queue.put(_noop)


def _noop() -> None:
    pass


def _watchdog() -> None:
    time.sleep(GRACE_S)
    _flush_std()
    os._exit(0)


def run(ex: Executor) -> None:
    """On the main thread once its loop stopped: finish, run the actor's hooks, exit the process."""
    _drain(ex)
    ex._flush_held()
    actor = ex.actor
    if actor is not None:
        hook = getattr(actor, "__ray_shutdown__", None)
        if callable(hook):
            try:
                value = hook()
                if inspect.isawaitable(value):
                    _await(ex, value)
            except BaseException:  # noqa: BLE001 - a failing hook must not stop the exit
                print(f"Error during actor __ray_shutdown__ method:\n{traceback.format_exc()}", file=sys.stderr)
        ex.actor = None
        del actor, hook
        gc.collect()  # the instance's __del__ runs now, before the atexit handlers (as at interpreter exit)
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    _flush_events(ex)
    _flush_std()
    time.sleep(0.2)  # the last results are on their way to the callers
    os._exit(0)


def _flush_events(ex: Executor) -> None:
    """Send the task events still buffered (the state API would otherwise never hear how its last tasks ended)."""
    try:
        ex.cw.events.close()
    except Exception:  # noqa: BLE001 - the head may be gone; exiting matters more
        pass


def _drain(ex: Executor) -> None:
    """Let calls that already started finish; calls not started never run."""
    for pool in [ex.actor_pool, *ex.group_pools.values()]:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if ex.async_calls:  # an async actor's calls: those that started finish, the rest return at once
        concurrent.futures.wait(list(ex.async_calls), timeout=GRACE_S)


def _await(ex: Executor, value: Any) -> None:
    loop = ex.loop
    if loop is None:
        asyncio.run(value)
        return
    asyncio.run_coroutine_threadsafe(value, loop).result(timeout=GRACE_S)


def _flush_std() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:  # noqa: BLE001
            pass
