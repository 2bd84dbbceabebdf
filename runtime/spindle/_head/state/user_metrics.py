"""The head's export of application metrics (``spindle.util.metrics``) on its Prometheus endpoint.

Every driver and worker reports a JSON snapshot of its metrics to the head's key-value table (see
``spindle._core.metrics_report``); at scrape time this collector merges them: counters and histograms
are summed over processes, a gauge takes the value set last. Metrics are named as Ray exports them,
``ray_<name>`` (counters get Prometheus' ``_total``), with their tags as labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from spindle._metrics_keys import KV_PREFIX

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

Series = dict[tuple[tuple[str, str], ...], dict[str, Any]]


def merge(snapshots: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, Series]]:
    """Pure: (meta by name, series by name and tags) from the processes' snapshots."""
    meta: dict[str, dict[str, Any]] = {}
    series: dict[str, Series] = {}
    for snap in snapshots:
        for name, m in snap.get("meta", {}).items():
            meta.setdefault(name, m)
        for s in snap.get("series", []):
            name = s["name"]
            m = meta.get(name)
            if m is None or snap.get("meta", {}).get(name, {}).get("kind") != m["kind"]:
                continue  # another process declared the name as another kind: keep the first
            key = tuple(sorted(s["tags"].items()))
            into = series.setdefault(name, {}).get(key)
            if into is None:
                series[name][key] = {k: (list(v) if isinstance(v, list) else v) for k, v in s.items()}
                continue
            if m["kind"] == "counter":
                into["value"] += s["value"]
            elif m["kind"] == "gauge":
                if s["t"] >= into["t"]:
                    into["value"], into["t"] = s["value"], s["t"]
            elif len(s["buckets"]) == len(into["buckets"]):
                into["buckets"] = [a + b for a, b in zip(into["buckets"], s["buckets"], strict=True)]
                into["sum"] += s["sum"]
                into["count"] += s["count"]
    return meta, series


class UserMetricsCollector(Collector):
    def __init__(self, head: HeadState):
        self.head = head

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        with self.head.lock:
            blobs = [v for k, v in self.head.kv.items() if k.startswith(KV_PREFIX)]
        snapshots = []
        for blob in blobs:
            try:
                snapshots.append(json.loads(blob))
            except ValueError:
                continue
        meta, series = merge(snapshots)
        for name, by_tags in sorted(series.items()):
            m = meta[name]
            labels = [k for k, _ in next(iter(by_tags))]
            full, desc = f"ray_{name}", m.get("description") or name
            family: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
            if m["kind"] == "counter":
                family = CounterMetricFamily(full, desc, labels=labels)
            elif m["kind"] == "gauge":
                family = GaugeMetricFamily(full, desc, labels=labels)
            else:
                family = HistogramMetricFamily(full, desc, labels=labels)
            for tags, s in sorted(by_tags.items()):
                values = [v for _, v in tags]
                if isinstance(family, HistogramMetricFamily):
                    bounds, cumulative, buckets = m["boundaries"], 0, []
                    for b, n in zip([*[str(float(x)) for x in bounds], "+Inf"], s["buckets"], strict=True):
                        cumulative += n
                        buckets.append((b, cumulative))
                    family.add_metric(values, buckets, s["sum"])
                else:
                    family.add_metric(values, s["value"])
            yield family
