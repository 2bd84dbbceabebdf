"""Where ``spindle.util.metrics`` values live until the head exports them.

Each process (driver or worker) keeps its metrics' values (counter totals, gauge values with the time
they were set, histogram bucket counts) and, while something changed, writes a JSON snapshot of all of
them to the head's key-value table about once a second (``SPINDLE_METRICS_REPORT_INTERVAL_S``), under
``__spindle_metrics__/<process id>``. The head's Prometheus collector (``_head.state.user_metrics``)
reads those snapshots at scrape time. A snapshot is the whole state, so a lost report loses nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

from spindle._metrics_keys import KV_PREFIX

INTERVAL_S = float(os.environ.get("SPINDLE_METRICS_REPORT_INTERVAL_S", "1"))

_lock = threading.Lock()
_series: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
_meta: dict[str, dict[str, Any]] = {}  # name -> kind, description, boundaries
_dirty = threading.Event()
_started = False
_source = uuid.uuid4().hex  # this process's key


def record(kind: str, name: str, description: str, tags: tuple[tuple[str, str], ...], value: float,
           boundaries: tuple[float, ...]) -> None:
    global _started
    with _lock:
        meta = _meta.get(name)
        if meta is None:
            _meta[name] = {"kind": kind, "description": description, "boundaries": list(boundaries)}
        elif meta["kind"] != kind:
            raise ValueError(f"Metric {name!r} is already a {meta['kind']} in this process; it can't also be a {kind}.")
        s = _series.get((name, tags))
        if s is None:
            s = _series[(name, tags)] = {"value": 0.0, "t": 0.0, "buckets": [0] * (len(boundaries) + 1),
                                         "sum": 0.0, "count": 0}
        if kind == "counter":
            s["value"] += value
        elif kind == "gauge":
            s["value"], s["t"] = value, time.time()
        else:
            bounds = _meta[name]["boundaries"]
            i = next((j for j, b in enumerate(bounds) if value <= b), len(bounds))
            s["buckets"][i] += 1
            s["sum"] += value
            s["count"] += 1
        if not _started:
            _started = True
            threading.Thread(target=_report_loop, daemon=True, name="spindle-metrics").start()
    _dirty.set()


def snapshot() -> bytes:
    with _lock:
        series = [{"name": name, "tags": dict(tags), **s} for (name, tags), s in _series.items()]
        return json.dumps({"meta": _meta, "series": series}).encode()


def _report_loop() -> None:
    while True:
        _dirty.wait()
        time.sleep(INTERVAL_S)
        _dirty.clear()
        flush()


def flush() -> bool:
    """Send this process's snapshot to the head now; False if there is no connection (kept for next time)."""
    from spindle._core.context import maybe_core
    from spindle._proto import pb

    cw = maybe_core()
    if cw is None:
        _dirty.set()
        return False
    try:
        cw.head().KvPut(pb.KvRequest(key=KV_PREFIX + _source, value=snapshot(), overwrite=True),
                        metadata=cw.md, timeout=10)
    except Exception:  # noqa: BLE001 - the head is away: the next change (or retry) sends the whole state
        _dirty.set()
        return False
    return True
