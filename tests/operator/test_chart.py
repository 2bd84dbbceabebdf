"""The helm chart: documented values, a schema that rejects bad ones, secure defaults, and an install whose
ServiceAccount can actually run the operator."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from spindle_operator._kube import RBAC_RULES

from .conftest import ROOT, Admin, OperatorThread, spindle_cluster, wait_for, worker_group

CHART = ROOT / "charts/spindle-operator"
KUBE_VERSION = "v1.36.0"  # helm template otherwise assumes v1.20, older than the chart's kubeVersion


def undocumented_values(values_file: Path) -> list[str]:
    """Keys of a values.yaml without a helm-docs "# --" comment on them or on an enclosing key."""
    lines = values_file.read_text().splitlines()
    ancestors: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)(\w+):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        above = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            above.append(lines[j].strip())
            j -= 1
        documented = any(c.startswith("# --") for c in above) or any(d for _, d in ancestors)
        is_parent = (
            rest.strip() == "" and i + 1 < len(lines) and len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
        )
        if is_parent:
            ancestors.append((indent, documented))
        elif not documented:
            undocumented.append(key)
    return undocumented


def test_every_value_is_documented_with_a_helm_docs_comment():
    # helm-docs convention: a "# --" comment right above a key documents it and everything below it.
    assert undocumented_values(CHART / "values.yaml") == []


def test_the_values_schema_covers_every_top_level_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"])


def template(kube_api: Any, *args: str) -> list[dict[str, Any]]:
    out = kube_api.helm(
        "template", "spindle", str(CHART), "--kube-version", KUBE_VERSION, "--namespace", "spindle-system", *args
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.k8s
def test_the_chart_lints_and_renders_least_privilege_rbac_and_a_restricted_pod(kube_api: Any):
    kube_api.helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    docs = {(d["kind"], d["metadata"]["name"]): d for d in template(kube_api)}
    role = docs[("ClusterRole", "spindle-spindle-operator")]
    assert role["rules"] == RBAC_RULES
    assert ("ClusterRoleBinding", "spindle-spindle-operator") in docs
    deployment = docs[("Deployment", "spindle-spindle-operator")]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "spindle-operator:0.1.0"
    assert "--all-namespaces" in container["args"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]


@pytest.mark.k8s
def test_watch_namespaces_bind_the_role_only_in_those_namespaces(kube_api: Any):
    docs = template(kube_api, "--set", "watchNamespaces={team-a,team-b}")
    kinds = [(d["kind"], d["metadata"].get("namespace")) for d in docs if "Binding" in d["kind"]]
    assert kinds == [("RoleBinding", "team-a"), ("RoleBinding", "team-b")]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--namespace=team-a", "--namespace=team-b"]


@pytest.mark.k8s
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("securityContext.allowPrivilegeEscalation=true", "/securityContext/allowPrivilegeEscalation"),
        ("securityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem must stay true"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces/0"),
        ("unknownKey=1", "unknownKey"),
    ],
)
def test_invalid_values_are_rejected(kube_api: Any, setting: str, message: str):
    result = kube_api.helm(
        "template", "spindle", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.k8s
@pytest.mark.parametrize("scope", ["all-namespaces", "watch-namespaces"])
def test_a_helm_install_gives_a_service_account_that_can_run_the_operator(
    kube_api: Any, admin: Admin, operator_kubeconfig: str, scope: str
):
    release = f"r{uuid.uuid4().hex[:6]}"
    release_ns = f"helm-{release}"
    extra = ["--set", f"watchNamespaces={{{admin.ns}}}"] if scope == "watch-namespaces" else []
    kube_api.helm(
        "install", release, str(CHART), "--namespace", release_ns, "--create-namespace", "--wait=false", *extra
    )
    try:
        account = f"system:serviceaccount:{release_ns}:{release}-spindle-operator"
        elsewhere = kube_api.kubectl("auth", "can-i", "list", "pods", "-n", "kube-system", "--as", account, check=False)
        assert elsewhere.stdout.strip() == ("no" if scope == "watch-namespaces" else "yes")
        kubeconfig = kube_api.service_account_kubeconfig(release_ns, f"{release}-spindle-operator")
        op = OperatorThread(admin.ns, kubeconfig).start()
        try:
            admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
            admin.wait_pods(1, 1)
            admin.make_all_ready()
            wait_for(lambda: admin.status().get("state") == "Ready", "Ready")
        finally:
            op.stop()
    finally:
        kube_api.helm("uninstall", release, "--namespace", release_ns)
        kube_api.kubectl("delete", "namespace", release_ns, "--wait=false")
