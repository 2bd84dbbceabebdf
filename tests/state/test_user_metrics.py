"""Application metrics (spindle.util.metrics, Ray's ray.util.metrics) recorded in tasks, actors and the
driver reach the head's Prometheus endpoint as ray_<name>, merged over processes (real cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from spindle.util.metrics import Counter, Gauge, Histogram
from tests.state.conftest import Cluster, eventually

DRIVER = """
import sys, spindle
from spindle.util.metrics import Counter, Gauge, Histogram

requests_total = Counter("app_requests", description="Requests served", tag_keys=("route",))
requests_total.set_default_tags({"route": "/"})

@spindle.remote
def serve(i):
    requests_total.inc()                       # default tag route=/
    requests_total.inc(2.0, tags={"route": "/api"})
    return i

@spindle.remote
class Queue:
    def __init__(self):
        self.depth = Gauge("app_queue_depth", description="Items waiting", tag_keys=("queue",))
        self.latency = Histogram("app_latency_s", description="Latency", boundaries=[0.1, 1.0], tag_keys=())
    def report(self, depth, latencies):
        self.depth.set(depth, tags={"queue": "jobs"})
        for v in latencies:
            self.latency.observe(v)
        return True

spindle.init(address=sys.argv[1])
assert spindle.get([serve.remote(i) for i in range(4)]) == [0, 1, 2, 3]
q = Queue.remote()
assert spindle.get(q.report.remote(7, [0.05, 0.5, 0.7, 3.0]))
requests_total.inc(10, tags={"route": "/driver"})
print("READY", flush=True)
sys.stdin.readline()  # stay connected until the test has scraped
"""


def samples(cluster: Cluster) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(cluster.metrics_url + "/metrics", headers=cluster.auth, timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name.startswith("ray_app_")}


def test_counters_gauges_and_histograms_from_tasks_actors_and_the_driver_are_exported(cluster: Cluster) -> None:
    env = {**os.environ, "SPINDLE_TOKEN": cluster.token}
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER), cluster.procs.head_address], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None and driver.stdin is not None
        assert driver.stdout.readline().strip() == "READY"
        want: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {
            ("ray_app_requests_total", (("route", "/"),)): 4.0,
            ("ray_app_requests_total", (("route", "/api"),)): 8.0,
            ("ray_app_requests_total", (("route", "/driver"),)): 10.0,
            ("ray_app_queue_depth", (("queue", "jobs"),)): 7.0,
            ("ray_app_latency_s_bucket", (("le", "0.1"),)): 1.0,
            ("ray_app_latency_s_bucket", (("le", "1.0"),)): 3.0,
            ("ray_app_latency_s_bucket", (("le", "+Inf"),)): 4.0,
            ("ray_app_latency_s_count", ()): 4.0,
        }

        def all_there() -> dict[Any, float] | None:
            got = samples(cluster)
            return got if all(got.get(k) == v for k, v in want.items()) else None

        got = eventually(all_there, timeout=60, what="the application metrics on /metrics")
        assert got[("ray_app_latency_s_sum", ())] == pytest.approx(4.25)
    finally:
        if driver.stdin is not None:
            driver.stdin.close()
        driver.wait(timeout=60)


def test_metric_arguments_are_checked_as_in_ray() -> None:
    with pytest.raises(ValueError, match="Empty name"):
        Counter("")
    with pytest.raises(TypeError, match="tag_keys should be a tuple"):
        Counter("c", tag_keys=["a"])  # type: ignore[arg-type]
    c = Counter("checked", tag_keys=("a",))
    assert c.set_default_tags({"a": "x"}) is c
    with pytest.raises(ValueError, match="Unrecognized tag key b"):
        c.set_default_tags({"b": "y"})
    with pytest.raises(ValueError, match="value must be >0"):
        c.inc(0)
    with pytest.raises(ValueError, match="Missing value for tag key\\(s\\): a"):
        Counter("untagged", tag_keys=("a",)).inc()
    with pytest.raises(ValueError, match="boundaries argument should be provided"):
        Histogram("h")
    with pytest.raises(ValueError, match="Use positive values"):
        Histogram("h", boundaries=[0.0, 1.0])
    with pytest.raises(TypeError, match="value must be int or float"):
        Gauge("g").set("high")  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="Invalid metric name"):
        Gauge("1bad")
