"""The operator process loads neither the runtime's wire layer nor the kubernetes client's typed API classes.

Each is memory in every operator pod for nothing: gRPC + protobuf (~16 MiB of RSS; the operator uses only the
runtime's pure policy and its HTTP job client, and its image leaves them out) and ``CoreV1Api``/``BatchV1Api``
(~22 MiB: ~250 pydantic model modules validating arguments the operator builds as plain dicts). The operator
talks to the API server through the kubernetes client's ``ApiClient`` (configuration, TLS, token) with JSON
bodies; these tests run it in a fresh interpreter against the real kube-apiserver and look at ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

pytestmark = pytest.mark.k8s

HEAVY = (
    "grpc",
    "google.protobuf",
    "numpy",
    "spindle._proto",
    "kubernetes.client.api.core_v1_api",
    "kubernetes.client.api.batch_v1_api",
    "kubernetes.client.models.v1_pod",
)


def run_fresh(code: str, *args: str) -> dict[str, Any]:
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import sys, json
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules], "result": RESULT}}))
    """)
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return answer


def test_importing_the_whole_operator_loads_no_wire_layer_and_no_typed_kubernetes_api() -> None:
    answer = run_fresh("""
        import spindle_operator, spindle_operator._cli, spindle_operator._handlers, spindle_operator._job_http
        from spindle.job_submission import JobSubmissionClient
        RESULT = JobSubmissionClient.__name__
    """)
    assert answer == {"loaded": [], "result": "JobSubmissionClient"}


def test_the_operators_api_calls_work_and_report_errors_without_the_typed_api(kube_api: Any,
                                                                               kube_namespace: str) -> None:
    answer = run_fresh("""
        import sys
        import kubernetes
        from spindle_operator._kube import ApiError, Kube, load_configuration

        kubeconfig, ns = sys.argv[1], sys.argv[2]
        kube = Kube(kubernetes.client.ApiClient(load_configuration(kubeconfig)))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}},
               "spec": {"containers": [{"name": "c", "image": "spindle:test"}]}}
        created = kube.create(ns, pod)
        again = kube.create(ns, pod)  # 409: already there
        listed = [p["metadata"]["name"] for p in kube.list_pods(ns, "app=x")]
        others = kube.list_pods(ns, "app=y")
        try:
            kube.create(ns, {**pod, "metadata": {"name": "Not_A_Name"}})
            error = None
        except ApiError as exc:
            error = [exc.status, exc.message]
        missing = kube.get_service(ns, "nope"), kube.get_secret_value(ns, "nope", "token")
        kube.create(ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "stringData": {"token": "t0k"}})
        token = kube.get_secret_value(ns, "s", "token")
        wrong_uid = kube.delete_pod(ns, "p", "00000000-0000-0000-0000-000000000000")
        deleted = kube.delete_pod(ns, "p", created["metadata"]["uid"])
        RESULT = {"created": created["metadata"]["name"], "again": again, "listed": listed, "others": others,
                  "error": error, "missing": list(missing), "token": token, "wrong_uid": wrong_uid,
                  "deleted": deleted}
    """, kube_api.admin_kubeconfig, kube_namespace)
    assert answer["loaded"] == []
    result = answer["result"]
    status, message = result.pop("error")
    assert status == 422 and "Not_A_Name" in message, message
    assert result == {"created": "p", "again": None, "listed": ["p"], "others": [], "missing": [None, None],
                      "token": "t0k", "wrong_uid": False, "deleted": True}
