"""The loop of the head's scheduler threads: a round when woken, and again after a backoff while work is left.

The actor scheduler and the placement group scheduler each ran this same loop with other wake
conditions and paces, and a fix to one (2bf22ab: keep the backoff's pace while a StartActor call is
unanswered, or a refusal that comes back without a wake-up waits forever) had to be found again in
the other. Here it is written once: events that may let work through (a node joined, resources
freed, work queued) set the ``wake`` event for a round now; what no event announces is picked up
by the backoff (``min_s`` doubling to ``max_s``, back to ``min_s`` after a round that made progress).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("spindle.head")


def run(wake: threading.Event, round_: Callable[[], bool], *, what: str, min_s: float, max_s: float,
        busy: Callable[[], bool] | None = None, wake_resets: bool = False) -> None:
    """Call ``round_`` (True: it made progress) each time ``wake`` is set, and between wake-ups after the backoff.

    ``busy``: while it says False nothing can come back without a wake-up, so the loop waits for one
    instead of polling (None: always poll). ``wake_resets``: a wake-up also brings the backoff back
    to ``min_s``. A round that raises is logged as ``"<what> failed"`` and counts as no progress: the
    loop outlives it. Never returns."""
    delay = min_s
    while True:
        woke = wake.wait(delay if busy is None or busy() else None)
        wake.clear()
        try:
            progress = round_()
        except Exception:  # the scheduler must outlive any one bad round
            log.exception("%s failed", what)
            progress = False
        delay = min_s if progress or (woke and wake_resets) else min(delay * 2, max_s)
