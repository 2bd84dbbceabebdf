"""The checked-in manifests are exactly what the code generates, and they say what the issue asks."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from spindle_operator import manifests
from spindle_operator._crd import build_crd

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_manifests_equal_the_generated_ones():
    diffs = manifests.check(ROOT / "manifests", manifests.render())
    diffs += manifests.check(ROOT / "charts/spindle-operator", manifests.render_chart())
    assert not diffs, "run `python -m spindle_operator.manifests write manifests/`\n" + "\n".join(diffs)


def test_the_check_command_fails_on_a_stale_file(tmp_path: Path):
    assert manifests.main(["write", str(tmp_path)]) == 0
    assert manifests.main(["check", str(tmp_path)]) == 0
    (tmp_path / "rbac/clusterrole.yaml").write_text("stale\n")
    assert manifests.main(["check", str(tmp_path)]) == 1


def test_the_crd_stays_far_below_the_kubectl_apply_annotation_limit():
    # kubectl apply stores the whole object in an annotation limited to 256 KiB (kuberay #271).
    assert len(json.dumps(build_crd())) < 32 * 1024


def test_the_crd_has_status_subresource_printer_columns_and_cel_rules():
    crd = build_crd()
    assert crd["metadata"]["name"] == "spindleclusters.spindle.dev"
    assert crd["spec"]["names"]["shortNames"] == ["spc"]
    [version] = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Desired",
        "Ready",
        "State",
        "Head IP",
        "Age",
    ]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    rules = [r["rule"] for r in spec["workerGroupSpecs"]["x-kubernetes-validations"]]
    rules += [r["rule"] for r in spec["workerGroupSpecs"]["items"]["x-kubernetes-validations"]]
    assert rules == [
        "self.all(g, self.exists_one(h, h.groupName == g.groupName))",
        "self.minReplicas <= self.maxReplicas",
    ]
    assert (
        spec["headGroupSpec"]["properties"]["template"]["properties"]["spec"]["properties"]["containers"]["minItems"]
        == 1
    )


def test_the_operator_role_is_least_privilege():
    role = yaml.safe_load((ROOT / "manifests/rbac/clusterrole.yaml").read_text())
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert not any("*" in item for entry in granted for item in entry)
    assert granted == {
        ("spindle.dev", "spindleclusters", "get"),
        ("spindle.dev", "spindleclusters", "list"),
        ("spindle.dev", "spindleclusters", "watch"),
        ("spindle.dev", "spindleclusters", "patch"),
        ("spindle.dev", "spindleclusters", "create"),  # a SpindleJob's own cluster
        ("spindle.dev", "spindleclusters", "delete"),  # ... deleted after the job when asked
        ("spindle.dev", "spindleclusters/status", "patch"),
        ("spindle.dev", "spindlejobs", "get"),
        ("spindle.dev", "spindlejobs", "list"),
        ("spindle.dev", "spindlejobs", "watch"),
        ("spindle.dev", "spindlejobs/status", "patch"),
        ("batch", "jobs", "get"),  # submitter Jobs
        ("batch", "jobs", "list"),
        ("batch", "jobs", "watch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("", "services", "get"),
        ("", "services", "create"),
        ("", "services", "patch"),
        ("", "secrets", "create"),
        ("", "secrets", "get"),  # a cluster's token, to ask its head; never list/watch: no secret is found by scanning
        ("", "events", "create"),
    }


def test_the_operator_deployment_runs_one_restricted_replica_with_a_liveness_probe():
    docs = manifests.load_all(ROOT / "manifests/operator/deployment.yaml")
    [deployment] = docs
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "spindle-operator"
    [container] = pod["containers"]
    assert "--all-namespaces" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}


def test_job_samples_cover_both_cluster_modes():
    new = manifests.load_all(ROOT / "manifests/samples/job-new-cluster.yaml")[0]
    existing = manifests.load_all(ROOT / "manifests/samples/job-existing-cluster.yaml")[0]
    assert new["kind"] == existing["kind"] == "SpindleJob"
    assert "clusterSpec" in new["spec"] and new["spec"]["shutdownAfterJobFinishes"] is True
    assert existing["spec"]["clusterSelector"] == {"spindle.dev/cluster": "minimal"}


def test_samples_are_spindle_clusters_with_one_and_two_groups():
    minimal = manifests.load_all(ROOT / "manifests/samples/minimal.yaml")[0]
    two = manifests.load_all(ROOT / "manifests/samples/two-groups.yaml")[0]
    assert minimal["kind"] == two["kind"] == "SpindleCluster"
    assert len(minimal["spec"]["workerGroupSpecs"]) == 1
    assert [g["groupName"] for g in two["spec"]["workerGroupSpecs"]] == ["cpu", "highmem"]
