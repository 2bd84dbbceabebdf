"""Proof that tests/kube_harness is a real control plane, not a stub.

Each test exercises one behaviour the operator's tests rely on and that only a real API server plus
controller manager provide: kubectl apply, RBAC denial for an unbound ServiceAccount token,
ownerReference garbage collection, and writing pod status through the status subresource (there is
no kubelet, so the operator tests play its part).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kube_harness import KubeAPI, wait_for

pytestmark = pytest.mark.k8s

WAIT = 60.0


def test_the_api_server_serves_https_and_kubectl_apply_creates_objects(kube_api: KubeAPI, kube_namespace: str) -> None:
    assert kube_api.server.startswith("https://127.0.0.1:")
    version = json.loads(kube_api.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1"
    manifest = textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: applied
          namespace: {kube_namespace}
        data:
          answer: "42"
        """)
    out = kube_api.kubectl("apply", "-f", "-", input=manifest)
    assert "configmap/applied created" in out.stdout
    again = kube_api.kubectl("apply", "-f", "-", input=manifest)
    assert "configmap/applied unchanged" in again.stdout
    with kube_api.api_client() as api:
        cm = client.CoreV1Api(api).read_namespaced_config_map("applied", kube_namespace)
    assert cm.data == {"answer": "42"}


def test_a_service_account_without_rbac_bindings_is_forbidden_from_listing_pods(
    kube_api: KubeAPI, kube_namespace: str
) -> None:
    kubeconfig = kube_api.service_account_kubeconfig(kube_namespace, "nobody")
    with kube_api.api_client(kubeconfig) as api, pytest.raises(ApiException) as denied:
        client.CoreV1Api(api).list_namespaced_pod(kube_namespace)
    assert denied.value.status == 403  # authenticated (not 401), but not authorized
    assert f"system:serviceaccount:{kube_namespace}:nobody" in str(denied.value.body)
    result = kube_api.kubectl("get", "pods", "-n", kube_namespace, kubeconfig=kubeconfig, check=False)
    assert result.returncode != 0
    assert "Forbidden" in result.stderr

    # The same token works once RBAC allows it, so the denial came from RBAC, not a broken token.
    kube_api.kubectl(
        "create",
        "role",
        "pod-reader",
        "--verb=list",
        "--resource=pods",
        "-n",
        kube_namespace,
    )
    kube_api.kubectl(
        "create",
        "rolebinding",
        "nobody-reads",
        "--role=pod-reader",
        f"--serviceaccount={kube_namespace}:nobody",
        "-n",
        kube_namespace,
    )

    def allowed() -> bool:
        return kube_api.kubectl("get", "pods", "-n", kube_namespace, kubeconfig=kubeconfig, check=False).returncode == 0

    wait_for(allowed, WAIT, "the RoleBinding to take effect")


def test_deleting_an_owner_configmap_garbage_collects_its_child(kube_api: KubeAPI, kube_namespace: str) -> None:
    with kube_api.api_client() as api:
        core = client.CoreV1Api(api)
        owner = core.create_namespaced_config_map(
            kube_namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")),
        )
        assert owner.metadata is not None and owner.metadata.uid
        reference = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
        core.create_namespaced_config_map(
            kube_namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[reference])),
        )
        core.delete_namespaced_config_map("owner", kube_namespace)

        def child_gone() -> bool:
            try:
                core.read_namespaced_config_map("child", kube_namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        wait_for(child_gone, WAIT, "the garbage collector to delete the child ConfigMap")


def test_pods_stay_pending_until_a_test_sets_them_running_and_ready_through_the_status_subresource(
    kube_api: KubeAPI, kube_namespace: str
) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="worker"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="spindle:test")]),
    )
    with kube_api.api_client() as api:
        core = client.CoreV1Api(api)
        created = core.create_namespaced_pod(kube_namespace, pod)
        assert created.status is not None
        assert created.status.phase == "Pending"  # no scheduler, no kubelet
        status = {
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.7",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                ],
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": "spindle:test",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    }
                ],
            }
        }
        core.patch_namespaced_pod_status("worker", kube_namespace, status)
        running = core.read_namespaced_pod("worker", kube_namespace)
    assert running.status is not None
    assert running.status.conditions and running.status.container_statuses
    assert running.status.phase == "Running"
    assert running.status.pod_ip == "10.244.0.7"
    ready = {c.type: c.status for c in running.status.conditions}
    assert ready["Ready"] == "True"
    assert running.status.container_statuses[0].ready is True


def test_helm_installs_and_uninstalls_a_chart_against_the_api_server(
    kube_api: KubeAPI, kube_namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    kube_api.helm("install", "demo", str(chart), "-n", kube_namespace, "--set", "greeting=hello")
    with kube_api.api_client() as api:
        core = client.CoreV1Api(api)
        assert core.read_namespaced_config_map("demo-settings", kube_namespace).data == {"greeting": "hello"}
        kube_api.helm("uninstall", "demo", "-n", kube_namespace, "--wait")
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_config_map("demo-settings", kube_namespace)
    assert gone.value.status == 404
