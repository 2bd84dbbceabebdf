"""Ray's state API SDK (``ray.util.state``): list and inspect a cluster's tasks, actors, nodes, logs.

Same names and signatures as Ray's: ``list_tasks(address=None, filters=[("state", "=", "RUNNING")],
limit=100, timeout=30, detail=False)`` and so on, talking HTTP to the head's :8265 with the cluster token.
Rows are dicts that also allow attribute access (``task.state``), like Ray's state dataclasses.
"""

from spindle.util.state.api import (
    StateApiClient,
    StateRow,
    get_actor,
    get_job,
    get_log,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_jobs,
    list_logs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    list_workers,
    summarize_actors,
    summarize_objects,
    summarize_tasks,
)

__all__ = [
    "StateApiClient", "StateRow", "get_actor", "get_job", "get_log", "get_node", "get_objects", "get_placement_group",
    "get_task", "get_worker", "list_actors", "list_jobs", "list_logs", "list_nodes", "list_objects",
    "list_placement_groups", "list_tasks", "list_workers", "summarize_actors", "summarize_objects", "summarize_tasks",
]
