"""The Kubernetes benchmark compares like with like: both sides ask for the same pods and run the same job."""

from __future__ import annotations

from bench.k8s import manifests


def _containers(spec: dict) -> list[dict]:  # type: ignore[type-arg]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_both_clusters_have_a_head_and_two_workers_with_the_same_resources() -> None:
    spindle = manifests.spindle_cluster("s", "spindle:x")["spec"]
    ray = manifests.ray_cluster("r", "ray:y")["spec"]
    assert spindle["workerGroupSpecs"][0]["replicas"] == ray["workerGroupSpecs"][0]["replicas"] == 2
    assert [c["resources"] for c in _containers(spindle)] == [c["resources"] for c in _containers(ray)]
    assert ray["headGroupSpec"]["rayStartParams"]["num-cpus"] == "1"


def test_both_jobs_run_the_same_primes_range_on_a_selected_or_their_own_cluster() -> None:
    on = manifests.spindle_job("j", "spindle:x", "s")["spec"]
    ray_on = manifests.ray_job("j", "ray:y", "r")["spec"]
    assert on["entrypoint"].endswith(manifests.PRIMES_ARGS) and ray_on["entrypoint"].endswith(manifests.PRIMES_ARGS)
    assert on["clusterSelector"] == {"spindle.dev/cluster": "s"} and ray_on["clusterSelector"] == {"ray.io/cluster": "r"}
    own = manifests.spindle_job("j", "spindle:x")["spec"]
    ray_own = manifests.ray_job("j", "ray:y")["spec"]
    assert own["shutdownAfterJobFinishes"] and ray_own["shutdownAfterJobFinishes"]
    assert "clusterSpec" in own and "rayClusterSpec" in ray_own


def test_kuberay_is_installed_with_its_own_cluster_role_and_our_image() -> None:
    rbac = [{"kind": "ClusterRole", "metadata": {"name": "kuberay-operator"}, "rules": []},
            {"kind": "ClusterRole", "metadata": {"name": "rayjob-editor-role"}, "rules": []}]
    objs = manifests.kuberay_install([{"kind": "CustomResourceDefinition"}], rbac, "kuberay-operator:v", "ns")
    kinds = [o["kind"] for o in objs]
    assert kinds == ["CustomResourceDefinition", "ClusterRole", "ServiceAccount", "ClusterRoleBinding", "Deployment"]
    container = objs[-1]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "kuberay-operator:v" and container["imagePullPolicy"] == "Never"
