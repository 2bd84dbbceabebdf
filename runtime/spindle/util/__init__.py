"""Helpers built on Spindle's public API, mirroring `ray.util`.

`ActorPool` is exported here; the distributed queue lives in `spindle.util.queue` (as in Ray, it is
imported from its submodule: `from spindle.util.queue import Queue, Empty, Full`).
"""

from spindle.util import queue
from spindle.util.actor_pool import ActorPool

__all__ = ["ActorPool", "queue"]
