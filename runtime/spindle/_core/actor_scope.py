"""Ending an actor when its handles go out of scope, as Ray does for actors that are not detached.

Ray counts an actor's handles across the cluster; when the last one is gone (and no submitted call is
still pending) the actor exits gracefully, running ``__ray_shutdown__``, ``__del__`` and its
``atexit`` handlers. Spindle counts the handles in the process that created the actor (its owner)
and stays on the safe side where it can't see: an actor whose handle was ever pickled (passed to a
task or another actor) is not collected this way; it ends with its job. A named actor is collected
like any other (as in Ray: ``get_actor`` elsewhere does not keep it); a detached one never is. The owner's actor client
sends the termination once the calls it still has in flight are done (``ActorClient.release``).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_counts: dict[bytes, int] = {}  # actor id -> live ActorHandle objects in this process
_collectible: set[bytes] = set()  # created here, not detached, never pickled


def created(actor_id: bytes) -> None:
    """This process just created the (non-detached) actor: it ends with its last handle here."""
    with _lock:
        _collectible.add(actor_id)


def escaped(actor_id: bytes) -> None:
    """A handle was pickled: other processes may hold it, so this process no longer decides."""
    with _lock:
        _collectible.discard(actor_id)


def handle_born(actor_id: bytes) -> None:
    with _lock:
        _counts[actor_id] = _counts.get(actor_id, 0) + 1


def handle_gone(actor_id: bytes) -> None:
    with _lock:
        n = _counts.get(actor_id, 0) - 1
        if n > 0:
            _counts[actor_id] = n
            return
        _counts.pop(actor_id, None)
        if actor_id not in _collectible:
            return
        _collectible.discard(actor_id)
    _release(actor_id)


def _release(actor_id: bytes) -> None:
    try:
        from spindle._core.context import maybe_core

        cw = maybe_core()
        if cw is None or cw.actors.closed:
            return
        cw.io_pool.submit(cw.actors.release, actor_id)
    except Exception:  # noqa: BLE001 - runs from __del__, possibly while the interpreter exits
        pass
