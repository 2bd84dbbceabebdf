"""charts/spindle-cluster: values become a SpindleCluster the API server accepts and the operator builds
pods from; the schema rejects bad values; a new image tag changes every group's template (a rollout)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from spindle_operator import OperatorSettings
from spindle_operator._builders import build_pod, template_hash

from .conftest import ROOT
from .test_chart import undocumented_values

CHART = ROOT / "charts/spindle-cluster"
KUBE_VERSION = "v1.36.0"


def render(kube_api: Any, *args: str, release: str = "demo") -> dict[str, Any]:
    out = kube_api.helm("template", release, str(CHART), "--kube-version", KUBE_VERSION, "--namespace", "team-a",
                        *args).stdout
    [cluster] = [d for d in yaml.safe_load_all(out) if d]
    assert isinstance(cluster, dict)
    return cluster


def test_every_value_is_documented_with_a_helm_docs_comment() -> None:
    assert undocumented_values(CHART / "values.yaml") == []


def test_the_values_schema_covers_every_top_level_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"])


@pytest.mark.k8s
def test_the_default_values_render_a_cluster_the_api_server_and_the_operator_accept(
    kube_api: Any, operator_kubeconfig: str
) -> None:
    kube_api.helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    cluster = render(kube_api)
    assert (cluster["kind"], cluster["metadata"]["name"], cluster["metadata"]["namespace"]) == (
        "SpindleCluster", "demo", "team-a")
    spec = cluster["spec"]
    [group] = spec["workerGroupSpecs"]
    assert (group["groupName"], group["replicas"], group["minReplicas"], group["maxReplicas"]) == ("workers", 1, 0, 4)
    for tmpl, name in ((spec["headGroupSpec"]["template"], "spindle-head"), (group["template"], "spindle-worker")):
        [container] = tmpl["spec"]["containers"]
        assert (container["name"], container["image"]) == (name, "spindle:0.1.0")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert tmpl["spec"]["securityContext"]["runAsNonRoot"] is True
    kube_api.kubectl("create", "namespace", "team-a", check=False)
    kube_api.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(cluster))
    live = {**cluster, "metadata": {**cluster["metadata"], "uid": "u-1"}}
    settings = OperatorSettings()
    head = build_pod(live, "head", spec["headGroupSpec"], settings)
    worker = build_pod(live, "worker", group, settings)
    assert head["spec"]["containers"][0]["command"][:3] == ["spindle", "start", "--head"]
    assert "--num-cpus" in worker["spec"]["containers"][0]["command"]


@pytest.mark.k8s
def test_extra_worker_groups_take_the_default_groups_values_unless_they_set_their_own(kube_api: Any) -> None:
    cluster = render(kube_api, "--set", "additionalWorkerGroups.big.replicas=2",
                     "--set", "additionalWorkerGroups.big.startParams.num-cpus=4",
                     "--set-json", 'worker.startParams={"resources": "{\\"a\\": 1}"}', "--set", "head.startParams.num-cpus=0")
    default, big = cluster["spec"]["workerGroupSpecs"]
    assert big["groupName"] == "big" and big["replicas"] == 2 and big["maxReplicas"] == default["maxReplicas"]
    assert big["startParams"] == {"num-cpus": "4", "resources": '{"a": 1}'}
    assert big["template"]["spec"]["containers"][0]["resources"] == default["template"]["spec"]["containers"][0][
        "resources"]
    assert cluster["spec"]["headGroupSpec"]["startParams"] == {"num-cpus": "0"}


@pytest.mark.k8s
def test_autoscaler_values_become_autoscaler_options_the_api_server_accepts(
    kube_api: Any, operator_kubeconfig: str
) -> None:
    assert "autoscalerOptions" not in render(kube_api)["spec"]
    cluster = render(kube_api, "--set", "autoscaler.enabled=true", "--set", "autoscaler.idleTimeoutSeconds=30",
                     "--set", "autoscaler.upscalingMode=Aggressive")
    assert cluster["spec"]["autoscalerOptions"] == {
        "enabled": True, "idleTimeoutSeconds": 30, "upscalingMode": "Aggressive", "drainTimeoutSeconds": 600}
    kube_api.kubectl("create", "namespace", "team-a", check=False)
    kube_api.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(cluster))


@pytest.mark.k8s
def test_a_new_image_tag_changes_the_template_of_every_group(kube_api: Any) -> None:
    before, after = render(kube_api), render(kube_api, "--set", "image.tag=0.2.0")
    assert after["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == "spindle:0.2.0"
    for old, new in [(before["spec"]["headGroupSpec"], after["spec"]["headGroupSpec"]),
                     (before["spec"]["workerGroupSpecs"][0], after["spec"]["workerGroupSpecs"][0])]:
        assert template_hash(old) != template_hash(new)


@pytest.mark.k8s
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("worker.replicas=-1", "/worker/replicas"),
        ("worker.groupName=Not_A_Name", "/worker/groupName"),
        ("additionalWorkerGroups.Bad_Name.replicas=1", "Bad_Name"),
        ("securityContext.allowPrivilegeEscalation=true", "/securityContext/allowPrivilegeEscalation"),
        ("head.serviceType=Ingress", "/head/serviceType"),
        ("autoscaler.upscalingMode=Fast", "/autoscaler/upscalingMode"),
        ("unknownKey=1", "unknownKey"),
    ],
)
def test_invalid_values_are_rejected(kube_api: Any, setting: str, message: str) -> None:
    result = kube_api.helm("template", "demo", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting,
                           check=False)
    assert result.returncode != 0
    assert message in result.stderr
