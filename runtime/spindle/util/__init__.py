"""Helpers built on Spindle's public API, mirroring `ray.util`.

`ActorPool` and the placement group functions are exported here; the distributed queue lives in
`spindle.util.queue` (as in Ray, it is imported from its submodule: `from spindle.util.queue import Queue,
Empty, Full`).
"""

from spindle.util import queue
from spindle.util.actor_pool import ActorPool
from spindle.util.check_serialize import inspect_serializability
from spindle.util.debug import disable_log_once_globally, enable_periodic_logging, log_once
from spindle.util.helpers import as_completed, map_unordered
from spindle.util.names import get_node_ip_address, list_named_actors
from spindle.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "as_completed",
    "disable_log_once_globally",
    "enable_periodic_logging",
    "get_current_placement_group",
    "get_node_ip_address",
    "get_placement_group",
    "inspect_serializability",
    "list_named_actors",
    "log_once",
    "map_unordered",
    "placement_group",
    "placement_group_table",
    "queue",
    "remove_placement_group",
]
