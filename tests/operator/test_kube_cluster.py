"""The operator, running as its shipped ServiceAccount, reconciling SpindleClusters on a real API server.

There is no kubelet: ``admin.make_ready`` / ``admin.set_phase`` play its part through the status
subresource, as KubeRay's envtest suite does. The controller manager's garbage collector is real.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from .conftest import MANIFESTS, Admin, OperatorThread, spindle_cluster, wait_for, worker_group

pytestmark = pytest.mark.k8s


def names(pods: list[Any]) -> list[str]:
    return [p.metadata.name for p in pods]


def state(admin: Admin, want: str, name: str = "c") -> dict[str, Any]:
    return wait_for(lambda: (s := admin.status(name)).get("state") == want and s, f"state {want}")  # type: ignore[no-any-return]


def test_a_new_cluster_gets_head_service_secret_and_workers_and_becomes_ready(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    heads, workers = admin.wait_pods(1, 2)
    uid = admin.cluster()["metadata"]["uid"]

    svc = admin.core.read_namespaced_service("c-head-svc", admin.ns)
    assert {p.name: p.port for p in svc.spec.ports} == {
        "gcs": 6380,
        "dashboard": 8265,
        "client": 10001,
        "metrics": 8080,
    }
    assert svc.spec.selector == {"spindle.dev/cluster": "c", "spindle.dev/node-type": "head"}
    secret = admin.core.read_namespaced_secret("c-spindle-token", admin.ns)
    assert len(base64.b64decode(secret.data["token"])) >= 32
    for obj in (svc, secret, *heads, *workers):
        [ref] = obj.metadata.owner_references
        assert (ref.kind, ref.uid, ref.controller) == ("SpindleCluster", uid, True)
    for pod in workers:
        assert pod.metadata.name.startswith("c-workers-worker-")
        assert pod.metadata.labels["spindle.dev/group"] == "workers"
        env = {e.name: e for e in pod.spec.containers[0].env}
        assert env["SPINDLE_ADDRESS"].value == f"c-head-svc.{admin.ns}.svc:6380"
        assert env["SPINDLE_TOKEN"].value_from.secret_key_ref.name == "c-spindle-token"
        assert pod.spec.init_containers[0].name == "wait-for-head"
    assert heads[0].spec.containers[0].command == [
        "spindle", "start", "--head", "--host", "0.0.0.0", "--port", "6380", "--block",
    ]  # fmt: skip

    assert state(admin, "Pending")["reason"] == "WaitingForHead"
    admin.make_ready(*heads)
    wait_for(lambda: admin.status().get("reason") == "WaitingForWorkers", "the head seen ready")
    admin.make_ready(*workers)
    status = state(admin, "Ready")
    assert status["readyWorkerReplicas"] == 2 and status["desiredWorkerReplicas"] == 2
    assert status["head"]["podName"] == heads[0].metadata.name
    assert status["head"]["podIP"].startswith("10.244.0.")
    assert status["head"]["serviceIP"] == svc.spec.cluster_ip
    assert status["observedGeneration"] == admin.cluster()["metadata"]["generation"]
    admin.wait_events("CreatedSecret", "CreatedService", "CreatedHeadPod", "CreatedWorkerPod")


def test_scaling_is_clamped_and_workers_to_delete_go_first(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2, maxReplicas=3)))
    admin.wait_pods(1, 2)
    admin.patch_group(0, replicas=7)
    _, workers = admin.wait_pods(1, 3)
    admin.make_all_ready()
    state(admin, "Ready")
    assert admin.status()["desiredWorkerReplicas"] == 3

    oldest, middle, newest = workers
    admin.patch_group(0, replicas=1, scaleStrategy={"workersToDelete": [oldest.metadata.name]})
    _, left = admin.wait_pods(1, 1)
    # The listed pod went first; the rest of the surplus came from the newest end.
    assert names(left) == [middle.metadata.name]
    wait_for(
        lambda: admin.cluster()["spec"]["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == [],
        "workersToDelete cleared",
    )
    admin.patch_group(0, replicas=0, minReplicas=2)
    admin.wait_pods(1, 2)


def test_a_failed_worker_is_replaced(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    _, workers = admin.wait_pods(1, 2)
    admin.make_all_ready()
    state(admin, "Ready")
    admin.set_phase(workers[0], "Failed", False)
    wait_for(
        lambda: workers[0].metadata.name not in names(admin.pods("worker")) and len(admin.pods("worker")) == 2,
        "the failed worker replaced",
    )
    assert workers[1].metadata.name in names(admin.pods("worker"))
    admin.wait_events("WorkerPodFailed")


def test_a_lost_or_failed_head_is_recreated_but_scaling_never_deletes_it(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
    [head], _ = admin.wait_pods(1, 1)
    admin.make_all_ready()
    admin.patch_group(0, replicas=0)
    admin.wait_pods(1, 0)
    assert names(admin.pods("head")) == [head.metadata.name]

    admin.delete_pod(head)
    [head2], _ = wait_for(
        lambda: (h := admin.pods("head")) and h[0].metadata.name != head.metadata.name and (h, None),
        "a new head after deletion",
    )
    admin.set_phase(head2, "Failed", False)
    [head3], _ = wait_for(
        lambda: (
            (h := admin.pods("head"))
            and h[0].metadata.name not in (head.metadata.name, head2.metadata.name)
            and (h, None)
        ),
        "a new head after failure",
    )
    assert state(admin, "Pending")["reason"] == "WaitingForHead"


def test_suspend_deletes_all_pods_and_resume_recreates_them(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    admin.wait_pods(1, 2)
    admin.make_all_ready()
    state(admin, "Ready")
    admin.patch_cluster({"spec": {"suspend": True}})
    admin.wait_pods(0, 0)
    status = state(admin, "Suspended")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Suspended"] == "True"
    admin.patch_cluster({"spec": {"suspend": False}})
    admin.wait_pods(1, 2)
    admin.make_all_ready()
    state(admin, "Ready")


def test_a_template_edit_rolls_out_one_worker_at_a_time_and_the_head_last(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=3)))
    [head], old = admin.wait_pods(1, 3)
    admin.make_all_ready()
    state(admin, "Ready")
    old_hash = old[0].metadata.labels["spindle.dev/template-hash"]

    cluster = admin.cluster()
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = "spindle:v2"
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "spindle:v2"
    admin.patch_cluster({"spec": cluster["spec"]})

    seen_unready_max = 0
    for step in range(3):

        def replaced(n: int = step + 1) -> list[Any] | None:
            workers = admin.pods("worker")
            new = [p for p in workers if p.metadata.labels["spindle.dev/template-hash"] != old_hash]
            return workers if len(new) == n and len(workers) == 3 else None

        workers = wait_for(replaced, f"{step + 1} workers rolled out")
        unready = [p for p in workers if not (p.status and p.status.phase == "Running")]
        seen_unready_max = max(seen_unready_max, len(unready))
        # The head waits while any worker is outdated or not ready, the last replacement included.
        assert names(admin.pods("head")) == [head.metadata.name]
        admin.make_ready(*unready)
    assert seen_unready_max == 1
    assert all(p.spec.containers[0].image == "spindle:v2" for p in admin.pods("worker"))
    [new_head], _ = wait_for(
        lambda: (h := admin.pods("head")) and h[0].metadata.name != head.metadata.name and (h, None),
        "the head rolled out last",
    )
    assert new_head.spec.containers[0].image == "spindle:v2"


def test_rollout_strategy_none_leaves_running_pods_alone(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=1), rolloutStrategy={"type": "None"}))
    [head], [worker] = admin.wait_pods(1, 1)
    admin.make_all_ready()
    state(admin, "Ready")
    admin.patch_group(0, startParams={"num-cpus": "3"})
    wait_for(
        lambda: admin.status().get("observedGeneration") == admin.cluster()["metadata"]["generation"],
        "the edit observed",
    )
    assert set(names(admin.pods())) == {head.metadata.name, worker.metadata.name}


def test_deleting_the_cluster_garbage_collects_every_child(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
    admin.wait_pods(1, 2)
    wait_for(lambda: admin.status().get("state"), "a status")
    admin.custom.delete_namespaced_custom_object("spindle.dev", "v1alpha1", admin.ns, "spindleclusters", "c")

    def gone() -> bool:
        if admin.core.list_namespaced_pod(admin.ns, label_selector="spindle.dev/cluster=c").items:
            return False
        for read in (admin.core.read_namespaced_service, admin.core.read_namespaced_secret):
            try:
                read(
                    "c-head-svc" if read == admin.core.read_namespaced_service else "c-spindle-token",
                    admin.ns,
                )
                return False
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return True

    wait_for(gone, "pods, service and secret garbage-collected", timeout=60)


def test_a_cluster_deletes_without_the_operator_running(admin: Admin, operator_kubeconfig: str):
    # No finalizers: uninstalling the operator never leaves clusters (or namespaces) stuck deleting.
    op = OperatorThread(admin.ns, operator_kubeconfig).start()
    admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
    admin.wait_pods(1, 1)
    op.stop()
    assert not admin.cluster()["metadata"].get("finalizers")
    admin.custom.delete_namespaced_custom_object("spindle.dev", "v1alpha1", admin.ns, "spindleclusters", "c")
    wait_for(lambda: not admin.pods(), "children collected without the operator", timeout=60)


def test_the_shipped_samples_reconcile_to_ready(kube_api: Any, admin: Admin, operator: OperatorThread):
    kube_api.kubectl("apply", "-n", admin.ns, "-f", str(MANIFESTS / "samples"))
    admin.wait_pods(1, 1, name="minimal")
    _, workers = admin.wait_pods(1, 3, name="two-groups")
    assert sorted(p.metadata.labels["spindle.dev/group"] for p in workers) == ["cpu", "cpu", "highmem"]
    cpu = next(p for p in workers if p.metadata.labels["spindle.dev/group"] == "cpu")
    assert cpu.spec.containers[0].command[-2:] == ["--num-cpus", "2"]
    head, _ = admin.wait_pods(1, 1, name="persistent-head")
    [persistent] = head
    main = persistent.spec.containers[0]
    assert main.command[-2:] == ["--storage", "/var/lib/spindle/head.sqlite"]  # the head's tables on the claim
    assert [m.mount_path for m in main.volume_mounts if m.name == "head-tables"] == ["/var/lib/spindle"]
    claim = next(v for v in persistent.spec.volumes if v.name == "head-tables").persistent_volume_claim
    assert claim.claim_name == "persistent-head-tables" and persistent.spec.security_context.fs_group == 1000
    for name in ("minimal", "two-groups", "persistent-head"):
        admin.make_all_ready(name)

        def ready(n: str = name) -> bool:
            return admin.status(n).get("state") == "Ready"

        wait_for(ready, f"{name} Ready")


def test_a_service_type_edit_updates_the_head_service(admin: Admin, operator: OperatorThread):
    admin.create_cluster(spindle_cluster())
    wait_for(lambda: admin.status().get("head", {}).get("serviceIP"), "the head service")
    admin.patch_cluster({"spec": {"headGroupSpec": {"serviceType": "NodePort"}}})

    def node_port() -> bool:
        svc = admin.core.read_namespaced_service("c-head-svc", admin.ns)
        return bool(svc.spec.type == "NodePort" and all(p.node_port for p in svc.spec.ports))

    wait_for(node_port, "the head service to become a NodePort service")
    admin.wait_events("UpdatedService")
    version = admin.core.read_namespaced_service("c-head-svc", admin.ns).metadata.resource_version
    admin.make_all_ready()
    wait_for(lambda: admin.status().get("state") == "Ready", "another pass, after the head is ready")
    # Allocated node ports are not drift: the service is not patched again.
    assert admin.core.read_namespaced_service("c-head-svc", admin.ns).metadata.resource_version == version
