"""Status is computed from observation alone, and is stable when nothing changed."""

from __future__ import annotations

from spindle_operator._builders import HEAD
from spindle_operator._reconcile import Observed
from spindle_operator._status import compute_status, status_changed

from .factories import SETTINGS, cluster, group, pod, service

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"


def status(c: dict, *pods: dict, failure: str | None = None, now: str = NOW) -> dict:
    return compute_status(c, Observed(list(pods), service(c)), SETTINGS, now=now, failure=failure)


def conditions(st: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in st["conditions"]}


def test_ready_when_the_head_and_every_desired_worker_are_ready():
    c = cluster(group(replicas=2))
    head = pod(c, HEAD, None)
    st = status(c, head, pod(c), pod(c))
    assert st["state"] == "Ready"
    assert st["readyWorkerReplicas"] == 2 and st["desiredWorkerReplicas"] == 2
    assert st["head"] == {
        "podName": head["metadata"]["name"],
        "podIP": head["status"]["podIP"],
        "serviceName": "c-head-svc",
        "serviceIP": "10.96.0.10",
    }
    assert st["endpoints"] == {"gcs": "6380", "dashboard": "8265", "client": "10001", "metrics": "8080"}
    assert st["observedGeneration"] == 1
    assert conditions(st) == {
        "HeadPodReady": "True",
        "WorkersReady": "True",
        "ReplicaFailure": "False",
        "Suspended": "False",
    }


def test_pending_while_the_head_or_workers_are_not_ready():
    c = cluster(group(replicas=2))
    assert status(c)["reason"] == "WaitingForHead"
    assert status(c)["head"]["podName"] is None
    st = status(c, pod(c, HEAD, None), pod(c), pod(c, phase="Pending", ready=False))
    assert (st["state"], st["reason"], st["readyWorkerReplicas"]) == ("Pending", "WaitingForWorkers", 1)


def test_suspended_only_once_every_pod_is_gone():
    c = cluster(group(replicas=2), suspend=True)
    assert (status(c, pod(c, HEAD, None, terminating=True))["reason"]) == "Suspending"
    st = status(c)
    assert st["state"] == "Suspended" and conditions(st)["Suspended"] == "True"
    assert st["desiredWorkerReplicas"] == 0


def test_a_rejected_pod_makes_the_cluster_failed_with_the_reason():
    c = cluster(group(replicas=1))
    st = status(c, failure="creating a pod failed: exceeded quota")
    assert (st["state"], st["reason"]) == ("Failed", "creating a pod failed: exceeded quota")
    failure = next(x for x in st["conditions"] if x["type"] == "ReplicaFailure")
    assert failure["status"] == "True" and failure["message"] == "creating a pod failed: exceeded quota"


def test_transition_times_survive_while_a_condition_holds_so_an_unchanged_world_writes_nothing():
    c = cluster(group(replicas=1))
    pods = [pod(c, HEAD, None), pod(c)]
    first = status(c, *pods)
    c["status"] = first
    second = status(c, *pods, now=LATER)
    assert second == first
    assert not status_changed(c, second)
    third = status(c, pods[0], now=LATER)
    flipped = next(x for x in third["conditions"] if x["type"] == "WorkersReady")
    assert flipped["lastTransitionTime"] == LATER
    assert status_changed(c, third)


def test_none_fields_compare_equal_to_absent_ones():
    c = cluster()
    st = status(c)
    c["status"] = {**st, "head": {k: v for k, v in st["head"].items() if v is not None}}
    assert not status_changed(c, st)
