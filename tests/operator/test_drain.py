"""Drain before delete in the pure reconcile: exact actions for workers removed by scaling."""

from __future__ import annotations

from spindle_operator._builders import HEAD
from spindle_operator._drain import AwaitDrain, DrainNode, HeadNode, HeadView, nodes_from_state
from spindle_operator._reconcile import ClearWorkersToDelete, DeletePod, Observed, reconcile

from .factories import SETTINGS, cluster, group, pod, service


def name(p: dict) -> str:
    return str(p["metadata"]["name"])


def node(p: dict, state: str = "ALIVE", idle_s: float | None = None, drained: bool = False) -> HeadNode:
    return HeadNode(f"node-{name(p)}", name(p), "workers", state, idle_s, drained)


def plan(c: dict, pods: list[dict], head: HeadView | None) -> list:
    return reconcile(c, Observed(pods=pods, service=service(c), head=head), SETTINGS, secret_known=True)


def test_a_busy_worker_removed_by_lowering_replicas_is_drained_instead_of_deleted():
    c = cluster(group(replicas=1))
    head_pod, old, new = pod(c, HEAD, None), pod(c), pod(c)
    view = HeadView({name(old): node(old, idle_s=3.0), name(new): node(new, idle_s=None)})
    # The idle worker goes, even though it is the older one (without the head's view: the newest).
    assert plan(c, [head_pod, old, new], view) == [
        DrainNode(f"node-{name(old)}", name(old), 600.0, "ScaleDown", "group workers scaled down to 1")
    ]
    assert plan(c, [head_pod, old, new], None) == [
        DeletePod(name(new), f"uid-{name(new)}", "ScaleDown", "group workers scaled down to 1")
    ]


def test_a_draining_worker_waits_and_is_deleted_once_the_head_says_drained():
    c = cluster(group(replicas=0), autoscalerOptions={"drainTimeoutSeconds": 30})
    head_pod, w = pod(c, HEAD, None), pod(c)
    assert plan(c, [head_pod, w], HeadView({name(w): node(w)})) == [
        DrainNode(f"node-{name(w)}", name(w), 30.0, "ScaleDown", "group workers scaled down to 0")
    ]
    assert plan(c, [head_pod, w], HeadView({name(w): node(w, "DRAINING")})) == [
        AwaitDrain(name(w), f"node-{name(w)}")
    ]
    assert plan(c, [head_pod, w], HeadView({name(w): node(w, "DRAINING", drained=True)})) == [
        DeletePod(name(w), f"uid-{name(w)}", "ScaleDown", "group workers scaled down to 0")
    ]


def test_workers_the_head_does_not_know_or_lost_and_pods_not_ready_are_deleted_at_once():
    c = cluster(group(replicas=0))
    head_pod, unknown, dead, starting = pod(c, HEAD, None), pod(c), pod(c), pod(c, phase="Pending", ready=False)
    view = HeadView({name(dead): node(dead, "DEAD"), name(starting): node(starting)})
    assert {(a.name, type(a)) for a in plan(c, [head_pod, unknown, dead, starting], view)} == {
        (name(unknown), DeletePod),
        (name(dead), DeletePod),
        (name(starting), DeletePod),
    }


def test_workers_to_delete_are_drained_and_stay_listed_until_deleted():
    g = group(replicas=1)
    c = cluster(g)
    head_pod, keep, listed = pod(c, HEAD, None), pod(c), pod(c)
    g["scaleStrategy"] = {"workersToDelete": [name(listed), "gone-already"]}
    view = HeadView({name(listed): node(listed, "DRAINING"), name(keep): node(keep)})
    actions = plan(c, [head_pod, keep, listed], view)
    assert actions[0] == AwaitDrain(name(listed), f"node-{name(listed)}")
    [clear] = actions[1:]
    assert isinstance(clear, ClearWorkersToDelete)
    assert clear.patch["spec"]["workerGroupSpecs"][0]["scaleStrategy"] == {"workersToDelete": [name(listed)]}
    drained = HeadView({name(listed): node(listed, "DRAINING", drained=True)})
    g["scaleStrategy"] = {"workersToDelete": [name(listed)]}
    actions = plan(c, [head_pod, keep, listed], drained)
    assert actions[0] == DeletePod(
        name(listed), f"uid-{name(listed)}", "WorkersToDelete", "listed in scaleStrategy.workersToDelete"
    )
    assert actions[1].patch["spec"]["workerGroupSpecs"][0]["scaleStrategy"] == {"workersToDelete": []}


def test_failed_pods_and_rollouts_are_never_held_back_by_draining():
    c = cluster(group(replicas=1))
    head_pod, failed = pod(c, HEAD, None), pod(c, phase="Failed", ready=False)
    view = HeadView({name(failed): node(failed)})
    assert [type(a).__name__ for a in plan(c, [head_pod, failed], view)] == [
        "EnsureTokenSecret", "DeletePod", "CreatePod"
    ]
    outdated = pod(c, outdated=True)
    view = HeadView({name(outdated): node(outdated)})
    assert [(type(a).__name__, getattr(a, "reason", "")) for a in plan(c, [head_pod, outdated], view)] == [
        ("EnsureTokenSecret", ""), ("DeletePod", "RolloutWorkerPod"), ("CreatePod", "CreatedWorkerPod")
    ]


def test_the_state_answer_maps_worker_nodes_to_pods_and_a_live_node_wins_over_its_dead_predecessor():
    payload = {
        "nodes": [
            {"node_id": "h", "is_head_node": True, "state": "ALIVE", "labels": {"spindle.dev/group": "head"}},
            {"node_id": "a", "is_head_node": False, "state": "DEAD", "idle_s": None,
             "labels": {"spindle.dev/pod-name": "p1", "spindle.dev/group": "g"}},
            {"node_id": "b", "is_head_node": False, "state": "ALIVE", "idle_s": 4,
             "labels": {"spindle.dev/pod-name": "p1", "spindle.dev/group": "g"}},
            {"node_id": "c", "is_head_node": False, "state": "ALIVE", "idle_s": None, "labels": {}},
        ]
    }
    assert nodes_from_state(payload) == {"p1": HeadNode("b", "p1", "g", "ALIVE", 4.0)}
