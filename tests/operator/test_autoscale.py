"""The autoscaler's tick as a pure function: exact spec patches, drains and status for each situation."""

from __future__ import annotations

from typing import Any

from spindle_operator._autoscale import Drain, enabled, group_resources, plan
from spindle_operator._builders import HEAD

from .factories import cluster, group, pod

NOW = "2026-11-29T06:00:00Z"
EARLIER = "2026-11-29T05:59:00Z"


def autoscaled(replicas: int = 0, max_replicas: int = 2, **group_extra: Any) -> dict[str, Any]:
    g = group(replicas=replicas, minReplicas=0, maxReplicas=max_replicas, startParams={"num-cpus": "1"},
              **group_extra)
    return cluster(g, autoscalerOptions={"enabled": True, "idleTimeoutSeconds": 60, "drainTimeoutSeconds": 300})


def head_node(cpus: float = 1, busy: bool = True) -> dict[str, Any]:
    return {"node_id": "head", "state": "ALIVE", "is_head_node": True, "labels": {"spindle.dev/group": "head"},
            "resources_total": {"CPU": cpus}, "resources_available": {"CPU": 0.0 if busy else cpus},
            "idle_s": None if busy else 1.0, "busy_reasons": []}


def worker_node(node_id: str, p: dict, idle_s: float | None, state: str = "ALIVE") -> dict[str, Any]:
    return {"node_id": node_id, "state": state, "is_head_node": False,
            "labels": {"spindle.dev/group": "workers", "spindle.dev/pod-name": p["metadata"]["name"]},
            "resources_total": {"CPU": 1.0}, "resources_available": {"CPU": 1.0 if idle_s is not None else 0.0},
            "idle_s": idle_s, "busy_reasons": [] if idle_s is not None else ["1 running task"]}


def state(*nodes: dict[str, Any], demand: int = 0) -> dict[str, Any]:
    pending = [{"shape": {"CPU": 1.0}, "count": demand, "kind": "task", "infeasible": False}] if demand else []
    return {"timestamp": 0, "nodes": [head_node(), *nodes], "pending_demand": pending, "requested_resources": []}


def with_pending(c: dict[str, Any], *entries: tuple[str, str]) -> dict[str, Any]:
    c["status"] = {"autoscaler": {
        "lastDecision": "workers=2; draining 1", "reason": "r", "time": EARLIER,
        "pendingDrains": [{"podName": p, "nodeId": n, "group": "workers", "since": EARLIER} for p, n in entries]}}
    return c


def groups_of(patch: dict[str, Any]) -> list[dict[str, Any]]:
    assert patch["metadata"] == {"resourceVersion": "7"}
    groups: list[dict[str, Any]] = patch["spec"]["workerGroupSpecs"]
    return groups


def test_queued_work_beyond_the_head_raises_replicas_up_to_max_at_once():
    c = autoscaled(replicas=0)
    tick = plan(c, [pod(c, HEAD, None)], state(demand=4), {}, NOW)
    [g] = groups_of(tick.spec_patch)
    assert g["replicas"] == 2 and "scaleStrategy" not in g
    assert tick.drains == () and tick.undrains == ()
    assert tick.events == (("ScaledUp", "group workers: 0 -> 2 workers"),)
    assert tick.status["lastDecision"] == "workers=2"
    assert tick.status["pendingDrains"] == [] and tick.status["time"] == NOW
    assert "launch 1 workers node" in tick.status["reason"]


def test_no_demand_and_busy_workers_change_nothing():
    c = autoscaled(replicas=1)
    w = pod(c)
    tick = plan(c, [pod(c, HEAD, None), w], state(worker_node("n1", w, None)), {}, NOW)
    assert tick.spec_patch is None and tick.drains == () and tick.events == ()
    assert tick.status["lastDecision"] == "workers=1"


def test_a_worker_idle_past_the_timeout_is_recorded_then_drained_without_touching_replicas():
    c = autoscaled(replicas=2)
    idle, busy = pod(c), pod(c)
    tick = plan(c, [pod(c, HEAD, None), idle, busy],
                state(worker_node("n1", idle, 61.0), worker_node("n2", busy, None)), {}, NOW)
    assert tick.spec_patch is None
    assert tick.drains == (Drain("n1", idle["metadata"]["name"], "workers", 300.0),)
    assert tick.status["pendingDrains"] == [
        {"podName": idle["metadata"]["name"], "nodeId": "n1", "group": "workers", "since": NOW}
    ]
    assert tick.events[0][0] == "DrainingWorker"


def test_a_worker_idle_shorter_than_the_timeout_stays():
    c = autoscaled(replicas=1)
    w = pod(c)
    tick = plan(c, [pod(c, HEAD, None), w], state(worker_node("n1", w, 59.0)), {}, NOW)
    assert tick.spec_patch is None and tick.drains == ()


def test_a_draining_worker_keeps_its_pod_and_replicas_until_the_head_says_drained():
    c = with_pending(autoscaled(replicas=2), ("w1", "n1"))
    w1, w2 = pod(c, name="w1"), pod(c, name="w2")
    nodes = (worker_node("n1", w1, None, "DRAINING"), worker_node("n2", w2, None))
    tick = plan(c, [pod(c, HEAD, None), w1, w2], state(*nodes), {"n1": False}, NOW)
    assert tick.spec_patch is None and tick.drains == () and tick.undrains == ()
    assert [p["nodeId"] for p in tick.status["pendingDrains"]] == ["n1"]


def test_a_drained_worker_is_listed_in_workers_to_delete_and_replicas_drop_by_one():
    c = with_pending(autoscaled(replicas=2), ("w1", "n1"))
    w1, w2 = pod(c, name="w1"), pod(c, name="w2")
    nodes = (worker_node("n1", w1, 70.0, "DRAINING"), worker_node("n2", w2, None))
    tick = plan(c, [pod(c, HEAD, None), w1, w2], state(*nodes), {"n1": True}, NOW)
    [g] = groups_of(tick.spec_patch)
    assert g["replicas"] == 1 and g["scaleStrategy"] == {"workersToDelete": ["w1"]}
    assert tick.status["pendingDrains"] == []
    assert tick.events == (("ScaledDown", "removing drained worker w1 of group workers"),)


def test_finalizing_twice_lowers_replicas_once():
    # The spec patch of the last tick landed but its status write did not: w1 is listed, replicas already 1.
    c = with_pending(autoscaled(replicas=1, scaleStrategy={"workersToDelete": ["w1"]}), ("w1", "n1"))
    w1, w2 = pod(c, name="w1"), pod(c, name="w2")
    nodes = (worker_node("n1", w1, 70.0, "DRAINING"), worker_node("n2", w2, None))
    tick = plan(c, [pod(c, HEAD, None), w1, w2], state(*nodes), {"n1": True}, NOW)
    assert tick.spec_patch is None and tick.status["pendingDrains"] == []
    # ... and once the reconcile deleted the pod and its node left, the same holds.
    c = with_pending(autoscaled(replicas=1), ("w1", "n1"))
    tick = plan(c, [pod(c, HEAD, None), w2], state(worker_node("n2", w2, None)), {}, NOW)
    assert tick.spec_patch is None and tick.status["pendingDrains"] == []


def test_new_demand_while_a_worker_drains_asks_for_a_new_pod_and_lets_the_drain_finish():
    c = with_pending(autoscaled(replicas=2, max_replicas=3), ("w1", "n1"))
    w1, w2 = pod(c, name="w1"), pod(c, name="w2")
    nodes = (worker_node("n1", w1, 70.0, "DRAINING"), worker_node("n2", w2, None))
    tick = plan(c, [pod(c, HEAD, None), w1, w2], state(*nodes, demand=1), {"n1": False}, NOW)
    [g] = groups_of(tick.spec_patch)
    assert g["replicas"] == 3  # the draining pod still counts until it is deleted
    assert tick.undrains == () and [p["nodeId"] for p in tick.status["pendingDrains"]] == ["n1"]
    # At maxReplicas the draining pod still counts, so the work waits for it to go.
    c = with_pending(autoscaled(replicas=2, max_replicas=2), ("w1", "n1"))
    tick = plan(c, [pod(c, HEAD, None), w1, w2], state(*nodes, demand=1), {"n1": False}, NOW)
    assert tick.spec_patch is None
    assert "waits: groups at max replicas: workers" in tick.status["reason"]


def test_the_status_time_moves_only_when_the_decision_changes():
    c = autoscaled(replicas=1)
    w = pod(c)
    first = plan(c, [pod(c, HEAD, None), w], state(worker_node("n1", w, None)), {}, EARLIER)
    c["status"] = {"autoscaler": first.status}
    again = plan(c, [pod(c, HEAD, None), w], state(worker_node("n1", w, None)), {}, NOW)
    assert again.status == first.status


def test_autoscaling_is_enabled_by_autoscaler_options_or_kuberays_switch():
    assert enabled(cluster(autoscalerOptions={"enabled": True}))
    assert enabled(cluster(enableInTreeAutoscaling=True))
    assert not enabled(cluster(autoscalerOptions={"idleTimeoutSeconds": 5}))


def test_a_groups_shape_comes_from_start_params_then_the_containers_limits():
    limits = {"spec": {"containers": [{"name": "s", "image": "i",
                                       "resources": {"limits": {"cpu": "1500m", "nvidia.com/gpu": 1}}}]}}
    assert group_resources({"groupName": "g", "template": limits}) == {"CPU": 1.5, "GPU": 1.0}
    params = {"num-cpus": "4", "resources": '{"highmem": 1}', "memory": "1000"}
    assert group_resources({"groupName": "g", "template": limits, "startParams": params}) == {
        "CPU": 4.0, "GPU": 1.0, "highmem": 1.0, "memory": 1000.0
    }


def test_a_worker_drained_by_a_manual_scale_down_is_left_to_the_reconcile():
    c = autoscaled(replicas=1)
    w1, w2 = pod(c, name="w1"), pod(c, name="w2")
    nodes = (worker_node("n1", w1, 70.0, "DRAINING"), worker_node("n2", w2, None))
    tick = plan(c, [pod(c, HEAD, None), w1, w2], state(*nodes), {}, NOW)
    assert tick.spec_patch is None and tick.drains == () and tick.status["pendingDrains"] == []
