"""Where application metrics (``spindle.util.metrics``) meet: the head's key-value table, under one prefix.

Shared by the reporting side (drivers and workers, ``_core.metrics_report``) and the exporting side
(the head's Prometheus collector, ``_head.state.user_metrics``), which import nothing of each other.
"""

KV_PREFIX = "__spindle_metrics__/"  # + the reporting process's id; the value is its JSON snapshot
