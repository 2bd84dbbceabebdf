"""The resources each side of the Kubernetes benchmark applies, the same shape on both sides: a head
and one group of 2 workers (200m CPU / 512Mi requested, 1 CPU / 1Gi limit each), and a job running
examples/primes.py over a small range, submitted by a pod of the same size on both sides. Pure functions
returning dicts."""

from __future__ import annotations

from typing import Any

RESOURCES = {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
PRIMES_ARGS = "--start 10000000 --end 10100000"


def _container(name: str, image: str) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "Never", "resources": RESOURCES}


def spindle_cluster_spec(image: str, workers: int) -> dict[str, Any]:
    return {
        "headGroupSpec": {"template": {"spec": {"containers": [_container("spindle-head", image)]}}},
        "workerGroupSpecs": [{"groupName": "workers", "replicas": workers, "minReplicas": 0, "maxReplicas": 4,
                              "template": {"spec": {"containers": [_container("spindle-worker", image)]}}}],
    }


def ray_cluster_spec(image: str, workers: int) -> dict[str, Any]:
    # num-cpus=1 so Ray, like Spindle's agents in these pods, offers one CPU per pod
    params = {"num-cpus": "1"}
    return {
        "headGroupSpec": {"rayStartParams": {**params, "dashboard-host": "0.0.0.0"},
                          "template": {"spec": {"containers": [_container("ray-head", image)]}}},
        "workerGroupSpecs": [{"groupName": "workers", "replicas": workers, "minReplicas": 0, "maxReplicas": 4,
                              "rayStartParams": params,
                              "template": {"spec": {"containers": [_container("ray-worker", image)]}}}],
    }


def spindle_cluster(name: str, image: str, workers: int = 2) -> dict[str, Any]:
    return {"apiVersion": "spindle.dev/v1alpha1", "kind": "SpindleCluster", "metadata": {"name": name},
            "spec": spindle_cluster_spec(image, workers)}


def ray_cluster(name: str, image: str, workers: int = 2) -> dict[str, Any]:
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": name},
            "spec": ray_cluster_spec(image, workers)}


def spindle_job(name: str, image: str, cluster: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"entrypoint": f"python /opt/spindle/examples/primes.py {PRIMES_ARGS}"}
    if cluster:
        spec["clusterSelector"] = {"spindle.dev/cluster": cluster}
    else:
        spec.update(clusterSpec=spindle_cluster_spec(image, 2), shutdownAfterJobFinishes=True)
    return {"apiVersion": "spindle.dev/v1alpha1", "kind": "SpindleJob", "metadata": {"name": name}, "spec": spec}


# Spindle's default submitter pod asks for this; KubeRay's default (500m CPU) does not fit beside a cluster on a
# 2-CPU kind node, so the RayJob gets the same small submitter (KubeRay fills in its `ray job submit` command)
SUBMITTER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def ray_job(name: str, image: str, cluster: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entrypoint": f"python /home/ray/primes.py {PRIMES_ARGS}",
        "submitterPodTemplate": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "ray-job-submitter", "image": image, "imagePullPolicy": "Never",
             "resources": SUBMITTER_RESOURCES}]}}}
    if cluster:
        spec["clusterSelector"] = {"ray.io/cluster": cluster}
    else:
        spec.update(rayClusterSpec=ray_cluster_spec(image, 2), shutdownAfterJobFinishes=True)
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name}, "spec": spec}


def kuberay_install(crds: list[dict[str, Any]], rbac: list[dict[str, Any]], image: str,
                    namespace: str) -> list[dict[str, Any]]:
    """KubeRay's CRDs and ClusterRole from its module (config/), plus its ServiceAccount, binding and
    Deployment as its config/manager does, with our image and no registry pulls."""
    labels = {"app.kubernetes.io/name": "kuberay", "app.kubernetes.io/component": "kuberay-operator"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kuberay-operator", "namespace": namespace, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "serviceAccountName": "kuberay-operator",
                     "securityContext": {"runAsNonRoot": True},
                     "containers": [{"name": "kuberay-operator", "image": image, "imagePullPolicy": "Never",
                                     "ports": [{"name": "http", "containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/metrics", "port": "http"},
                                                        "periodSeconds": 2},
                                     "securityContext": {"allowPrivilegeEscalation": False}}]}}}}
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "kuberay-operator", "namespace": namespace}}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "kuberay-operator"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kuberay-operator"},
               "subjects": [{"kind": "ServiceAccount", "name": "kuberay-operator", "namespace": namespace}]}
    roles = [r for r in rbac if r.get("kind") == "ClusterRole" and r["metadata"]["name"] == "kuberay-operator"]
    return [*crds, *roles, account, binding, deployment]
