"""The shipped manifests against a real API server: apply, schema validation, RBAC scope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import MANIFESTS

pytestmark = pytest.mark.k8s

SA = "system:serviceaccount:spindle-system:spindle-operator"


def apply(kube_api: Any, namespace: str, manifest: str) -> Any:
    return kube_api.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)


def test_kubectl_apply_of_the_crds_and_samples_works(kube_api: Any, kube_namespace: str, operator_kubeconfig: str):
    out = kube_api.kubectl(
        "apply", "-n", kube_namespace, "-f", str(MANIFESTS / "crds"), "-f", str(MANIFESTS / "samples")
    )
    assert "spindlecluster.spindle.dev/minimal created" in out.stdout
    assert "spindlecluster.spindle.dev/two-groups created" in out.stdout
    table = kube_api.kubectl("get", "spc", "-n", kube_namespace).stdout
    assert table.split("\n")[0].split() == ["NAME", "DESIRED", "READY", "STATE", "HEAD", "IP", "AGE"]
    got = json.loads(kube_api.kubectl("get", "spc", "two-groups", "-n", kube_namespace, "-o", "json").stdout)
    # Schema defaults are applied by the API server.
    assert got["spec"]["workerGroupSpecs"][1]["minReplicas"] == 0
    assert got["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"


@pytest.mark.parametrize(
    ("spec_yaml", "message"),
    [
        (
            "workerGroupSpecs: [{groupName: w, replicas: 1, minReplicas: 3, maxReplicas: 2, template: {spec: "
            "{containers: [{name: s, image: i}]}}}]",
            "minReplicas must be less than or equal to maxReplicas",
        ),
        (
            "workerGroupSpecs: [{groupName: w, template: {spec: {containers: [{name: s, image: i}]}}}, "
            "{groupName: w, template: {spec: {containers: [{name: s, image: i}]}}}]",
            "workerGroupSpecs[].groupName values must be unique",
        ),
        (
            "workerGroupSpecs: [{groupName: w, template: {spec: {containers: []}}}]",
            "should have at least 1 items",
        ),
        (
            "workerGroupSpecs: [{groupName: Not_A_Label, template: {spec: {containers: [{name: s, image: i}]}}}]",
            "spec.workerGroupSpecs[0].groupName",
        ),
        (
            "autoscalerOptions: {enabled: true, upscalingMode: Fast}",
            'spec.autoscalerOptions.upscalingMode: Unsupported value: "Fast"',
        ),
        (
            "autoscalerOptions: {enabled: true, idleTimeoutSeconds: -1}",
            "spec.autoscalerOptions.idleTimeoutSeconds",
        ),
    ],
    ids=["min-greater-than-max", "duplicate-group-names", "no-containers", "group-name-not-dns-label",
         "unknown-upscaling-mode", "negative-idle-timeout"],
)
def test_invalid_clusters_are_rejected_with_a_clear_message(
    kube_api: Any, kube_namespace: str, operator_kubeconfig: str, spec_yaml: str, message: str
):
    manifest = (
        "apiVersion: spindle.dev/v1alpha1\nkind: SpindleCluster\nmetadata: {name: bad}\nspec:\n"
        "  headGroupSpec: {template: {spec: {containers: [{name: s, image: i}]}}}\n"
        f"  {spec_yaml}\n"
    )
    result = apply(kube_api, kube_namespace, manifest)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_cluster_name_too_long_for_its_service_is_rejected(
    kube_api: Any, kube_namespace: str, operator_kubeconfig: str
):
    manifest = (
        f"apiVersion: spindle.dev/v1alpha1\nkind: SpindleCluster\nmetadata: {{name: {'x' * 49}}}\nspec:\n"
        "  headGroupSpec: {template: {spec: {containers: [{name: s, image: i}]}}}\n"
    )
    result = apply(kube_api, kube_namespace, manifest)
    assert result.returncode != 0 and "metadata.name must be at most 48 characters" in result.stderr


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("create", "pods", True),
        ("delete", "pods", True),
        ("watch", "pods", True),
        ("patch", "spindleclusters.spindle.dev", True),
        ("patch", "spindleclusters.spindle.dev --subresource=status", True),
        ("create", "secrets", True),
        ("create", "events", True),
        ("get", "secrets", True),  # by name: the cluster token, to call its head
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("patch", "pods", False),
        ("update", "pods --subresource=status", False),
        ("create", "pods --subresource=exec", False),
        ("update", "spindleclusters.spindle.dev", False),
        ("delete", "services", False),
        ("create", "deployments.apps", False),
        ("delete", "spindleclusters.spindle.dev", True),  # a SpindleJob's own cluster, after the job
        ("create", "spindleclusters.spindle.dev", True),  # ... made for the job (clusterSpec)
        ("patch", "spindlejobs.spindle.dev --subresource=status", True),
        ("watch", "spindlejobs.spindle.dev", True),
        ("patch", "spindlejobs.spindle.dev", False),
        ("create", "spindlejobs.spindle.dev", False),
        ("delete", "spindlejobs.spindle.dev", False),
        ("create", "jobs.batch", True),  # submitters
        ("delete", "jobs.batch", True),
        ("patch", "jobs.batch", False),
        ("create", "cronjobs.batch", False),
        ("list", "nodes", False),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", False),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", False),
        ("escalate", "clusterroles.rbac.authorization.k8s.io", False),
    ],
)
def test_the_operator_service_account_can_do_exactly_what_it_needs(
    kube_api: Any, kube_namespace: str, operator_kubeconfig: str, verb: str, resource: str, allowed: bool
):
    # Sufficiency is proven by every other k8s test (the operator runs as this account); this pins scope.
    result = kube_api.kubectl("auth", "can-i", verb, *resource.split(), "-n", kube_namespace, "--as", SA, check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def test_the_operator_deployment_is_accepted_by_the_api_server(kube_api: Any, operator_kubeconfig: str):
    out = kube_api.kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS / "operator"))
    assert "deployment.apps/spindle-operator created (server dry run)" in out.stdout
