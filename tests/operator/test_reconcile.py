"""The pure reconcile: exact action lists for each situation a SpindleCluster can be in."""

from __future__ import annotations

import copy

from spindle_operator._builders import HEAD, WORKER, build_head_service, build_pod
from spindle_operator._reconcile import (
    ClearWorkersToDelete,
    CreatePod,
    CreateService,
    DeletePod,
    EnsureTokenSecret,
    Observed,
    PatchService,
    reconcile,
)

from .factories import SETTINGS, cluster, group, pod, service

SECRET = EnsureTokenSecret("c-spindle-token")


def head_create(c: dict, why: str = "the cluster has no head pod") -> CreatePod:
    return CreatePod(build_pod(c, HEAD, c["spec"]["headGroupSpec"], SETTINGS), "CreatedHeadPod", why)


def worker_create(c: dict, g: dict, message: str) -> CreatePod:
    return CreatePod(build_pod(c, WORKER, g, SETTINGS), "CreatedWorkerPod", message)


def delete(p: dict, reason: str, message: str) -> DeletePod:
    return DeletePod(p["metadata"]["name"], p["metadata"]["uid"], reason, message)


def plan(c: dict, *pods: dict, svc: bool = True, secret_known: bool = True) -> list:
    observed = Observed(pods=list(pods), service=service(c) if svc else None)
    return reconcile(c, observed, SETTINGS, secret_known=secret_known)


def test_a_new_cluster_gets_secret_service_head_and_workers_in_that_order():
    g = group(replicas=2)
    c = cluster(g)
    assert plan(c, svc=False, secret_known=False) == [
        EnsureTokenSecret("c-spindle-token"),
        CreateService(build_head_service(c, SETTINGS)),
        head_create(c),
        worker_create(c, g, "group workers has 0/2 workers"),
        worker_create(c, g, "group workers has 1/2 workers"),
    ]


def test_a_converged_cluster_needs_no_action():
    c = cluster(group(replicas=2))
    assert plan(c, pod(c, HEAD, None), pod(c), pod(c)) == []


def test_replicas_above_max_are_clamped_to_max():
    g = group(replicas=5, minReplicas=0, maxReplicas=3)
    c = cluster(g)
    actions = plan(c, pod(c, HEAD, None))
    assert [a.message for a in actions if isinstance(a, CreatePod)] == [
        "group workers has 0/3 workers",
        "group workers has 1/3 workers",
        "group workers has 2/3 workers",
    ]


def test_replicas_below_min_are_clamped_to_min_and_missing_replicas_mean_min():
    g = group(replicas=0, minReplicas=1, maxReplicas=3)
    c = cluster(g)
    assert plan(c, pod(c, HEAD, None)) == [SECRET, worker_create(c, g, "group workers has 0/1 workers")]
    del g["replicas"]
    assert plan(c, pod(c, HEAD, None)) == [SECRET, worker_create(c, g, "group workers has 0/1 workers")]


def test_scale_down_deletes_the_newest_ready_workers():
    c = cluster(group(replicas=1))
    old, mid, new = (
        pod(c, created="2026-01-01T00:00:01Z"),
        pod(c, created="2026-01-01T00:00:02Z"),
        pod(c, created="2026-01-01T00:00:03Z"),
    )
    assert plan(c, pod(c, HEAD, None), mid, new, old) == [
        delete(new, "ScaleDown", "group workers scaled down to 1"),
        delete(mid, "ScaleDown", "group workers scaled down to 1"),
    ]


def test_scale_down_takes_not_ready_workers_before_busy_ready_ones():
    c = cluster(group(replicas=1))
    ready_new = pod(c, created="2026-01-01T00:00:05Z")
    pending_old = pod(c, created="2026-01-01T00:00:01Z", phase="Pending", ready=False)
    assert plan(c, pod(c, HEAD, None), ready_new, pending_old) == [
        delete(pending_old, "ScaleDown", "group workers scaled down to 1")
    ]


def test_workers_to_delete_go_first_then_the_list_is_cleared_guarded_by_resource_version():
    g = group(replicas=1)
    c = cluster(g)
    a, b = pod(c, created="2026-01-01T00:00:01Z"), pod(c, created="2026-01-01T00:00:02Z")
    g["scaleStrategy"] = {"workersToDelete": [a["metadata"]["name"], "already-gone"]}
    cleared = copy.deepcopy(c["spec"]["workerGroupSpecs"])
    cleared[0]["scaleStrategy"]["workersToDelete"] = []
    assert plan(c, pod(c, HEAD, None), a, b) == [
        delete(a, "WorkersToDelete", "listed in scaleStrategy.workersToDelete"),
        ClearWorkersToDelete({"metadata": {"resourceVersion": "7"}, "spec": {"workerGroupSpecs": cleared}}),
    ]


def test_a_worker_listed_for_deletion_without_scale_down_is_replaced():
    g = group(replicas=1)
    c = cluster(g)
    a = pod(c)
    g["scaleStrategy"] = {"workersToDelete": [a["metadata"]["name"]]}
    actions = plan(c, pod(c, HEAD, None), a)
    assert actions[:3] == [
        SECRET,
        delete(a, "WorkersToDelete", "listed in scaleStrategy.workersToDelete"),
        worker_create(c, g, "group workers has 0/1 workers"),
    ]
    assert isinstance(actions[3], ClearWorkersToDelete)


def test_failed_and_completed_workers_are_deleted_and_replaced():
    g = group(replicas=2)
    c = cluster(g)
    failed, done = pod(c, phase="Failed", ready=False), pod(c, phase="Succeeded", ready=False)
    assert plan(c, pod(c, HEAD, None), failed, done) == [
        SECRET,
        delete(failed, "WorkerPodFailed", "worker pod is Failed; it will be replaced"),
        delete(done, "WorkerPodFailed", "worker pod is Succeeded; it will be replaced"),
        worker_create(c, g, "group workers has 0/2 workers"),
        worker_create(c, g, "group workers has 1/2 workers"),
    ]


def test_a_failed_head_is_deleted_and_recreated():
    c = cluster(group(replicas=1))
    head = pod(c, HEAD, None, phase="Failed", ready=False)
    assert plan(c, head, pod(c)) == [
        SECRET,
        delete(head, "HeadPodFailed", f"head pod {head['metadata']['name']} is Failed; it will be recreated"),
        head_create(c, "replacing the failed head pod"),
    ]


def test_a_running_head_survives_scaling_workers_to_zero():
    c = cluster(group(replicas=0))
    w = pod(c)
    assert plan(c, pod(c, HEAD, None), w) == [delete(w, "ScaleDown", "group workers scaled down to 0")]


def test_duplicate_heads_keep_the_ready_one():
    c = cluster()
    older_pending = pod(c, HEAD, None, phase="Pending", ready=False, created="2026-01-01T00:00:01Z")
    newer_ready = pod(c, HEAD, None, created="2026-01-01T00:00:02Z")
    assert plan(c, older_pending, newer_ready) == [
        delete(
            older_pending,
            "DuplicateHeadPod",
            f"cluster already has head pod {newer_ready['metadata']['name']}",
        )
    ]


def test_suspend_deletes_every_pod_and_creates_none():
    c = cluster(group(replicas=2), suspend=True)
    head, w1, w2 = pod(c, HEAD, None), pod(c), pod(c)
    assert plan(c, head, w1, w2) == [
        delete(head, "Suspend", "cluster is suspended"),
        delete(w2, "Suspend", "cluster is suspended"),
        delete(w1, "Suspend", "cluster is suspended"),
    ]
    assert plan(c, svc=True, secret_known=False) == []


def test_resume_recreates_head_and_workers():
    g = group(replicas=1)
    c = cluster(g, suspend=False)
    assert plan(c) == [SECRET, head_create(c), worker_create(c, g, "group workers has 0/1 workers")]


def test_a_suspended_group_loses_only_its_own_pods():
    a, b = group("a", replicas=1), group("b", replicas=1, suspend=True)
    c = cluster(a, b)
    pa, pb = pod(c, group_name="a"), pod(c, group_name="b")
    assert plan(c, pod(c, HEAD, None), pa, pb) == [delete(pb, "Suspend", "group b is suspended")]


def test_template_edit_replaces_one_worker_at_a_time_and_holds_the_head():
    g = group(replicas=3)
    c = cluster(g)
    head = pod(c, HEAD, None)
    w = [pod(c, outdated=True, created=f"2026-01-01T00:00:0{i}Z") for i in range(3)]
    assert plan(c, head, *w) == [
        SECRET,
        delete(w[0], "RolloutWorkerPod", "group workers template changed"),
        worker_create(c, g, "rolling out group workers"),
    ]
    # The replacement is not ready yet: the budget of one unavailable pod is used up.
    fresh = pod(c, phase="Pending", ready=False)
    assert plan(c, head, fresh, w[1], w[2]) == []


def test_max_unavailable_bounds_how_many_workers_are_replaced_at_once():
    g = group(replicas=3)
    c = cluster(g, rolloutStrategy={"type": "Rolling", "maxUnavailable": 2})
    w = [pod(c, outdated=True, created=f"2026-01-01T00:00:0{i}Z") for i in range(3)]
    actions = plan(c, pod(c, HEAD, None), *w)
    assert [a.name for a in actions if isinstance(a, DeletePod)] == [
        w[0]["metadata"]["name"],
        w[1]["metadata"]["name"],
    ]
    assert sum(isinstance(a, CreatePod) for a in actions) == 2


def test_the_head_is_replaced_last_once_every_worker_is_current_and_ready():
    c = cluster(group(replicas=1))
    head = pod(c, HEAD, None, outdated=True)
    assert plan(c, head, pod(c, outdated=True))[1].reason == "RolloutWorkerPod"
    # The last replacement is created but not ready yet: the head's outage must not overlap it.
    assert plan(c, head, pod(c, phase="Pending", ready=False)) == []
    assert plan(c, head, pod(c)) == [
        SECRET,
        delete(
            head,
            "RolloutHeadPod",
            "head pod template changed; replacing the head after all workers are current and ready",
        ),
        CreatePod(build_pod(c, HEAD, c["spec"]["headGroupSpec"], SETTINGS), "CreatedHeadPod", "rolling out new head"),
    ]


def test_a_head_that_is_not_ready_is_replaced_without_waiting_for_the_workers():
    # e.g. the edit fixes a crashing head: the workers wait for a head, so waiting for them would deadlock.
    c = cluster(group(replicas=1))
    head = pod(c, HEAD, None, outdated=True, ready=False)
    actions = plan(c, head, pod(c, outdated=True, phase="Pending", ready=False))
    assert [a.reason for a in actions if isinstance(a, (CreatePod, DeletePod))] == [
        "RolloutHeadPod",
        "CreatedHeadPod",
    ]


def test_rollout_strategy_none_leaves_running_pods_alone():
    c = cluster(group(replicas=1), rolloutStrategy={"type": "None"})
    assert plan(c, pod(c, HEAD, None, outdated=True), pod(c, outdated=True)) == []


def test_pods_of_another_owner_are_neither_counted_nor_touched():
    g = group(replicas=1)
    c = cluster(g)
    stranger = pod(c, owner_uid="someone-else")
    assert plan(c, pod(c, HEAD, None), stranger) == [
        SECRET,
        worker_create(c, g, "group workers has 0/1 workers"),
    ]


def test_terminating_pods_are_not_counted_nor_deleted_again():
    g = group(replicas=1)
    c = cluster(g)
    going = pod(c, terminating=True)
    assert plan(c, pod(c, HEAD, None), going) == [
        SECRET,
        worker_create(c, g, "group workers has 0/1 workers"),
    ]


def test_pods_of_a_removed_group_are_deleted():
    c = cluster(group("a", replicas=0))
    orphan = pod(cluster(group("gone", replicas=1)), group_name="gone")
    assert plan(c, pod(c, HEAD, None), orphan) == [
        delete(orphan, "GroupRemoved", "worker group 'gone' is no longer in the spec")
    ]


def test_a_service_type_edit_patches_the_service():
    c = cluster()
    observed_svc = service(c)
    c["spec"]["headGroupSpec"]["serviceType"] = "NodePort"
    actions = reconcile(c, Observed([pod(c, HEAD, None)], observed_svc), SETTINGS, secret_known=True)
    assert actions == [PatchService("c-head-svc", {"spec": build_head_service(c, SETTINGS)["spec"]})]


def test_the_token_secret_is_ensured_before_any_pod_is_created():
    g = group(replicas=1)
    c = cluster(g)
    assert plan(c, pod(c, HEAD, None), secret_known=True)[0] == SECRET
    assert plan(c, pod(c, HEAD, None), pod(c), secret_known=True) == []


def test_reconcile_is_idempotent_on_the_same_observation():
    c = cluster(group(replicas=3))
    pods = [pod(c, HEAD, None), pod(c, phase="Failed")]
    assert plan(c, *pods) == plan(c, *pods)


def test_a_service_of_the_same_name_owned_by_someone_else_is_left_alone():
    c = cluster()
    foreign = service(c)
    foreign["metadata"]["ownerReferences"] = []
    foreign["spec"]["type"] = "NodePort"
    assert reconcile(c, Observed([pod(c, HEAD, None)], foreign), SETTINGS, secret_known=True) == []
