"""The operator's only door to the API server for children: a small typed wrapper over the kubernetes client.

Everything goes through plain dicts (``_preload_content=False`` + JSON), matching the pure builders and the
reconcile input, so no model classes leak into the logic. The wrapper also documents, by its method list,
exactly which verbs the operator uses; ``manifests.py`` derives the RBAC rules from the same list
(:data:`RBAC_RULES`) and the API-server tests prove the two agree.

Kopf keeps its own connection for watching and event posting; :func:`kopf_connection` builds it from the
same kubeconfig so both talk to the same server as the same identity.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import kopf
import kubernetes

from ._builders import GROUP, PLURAL, VERSION, Obj
from ._job_builders import JOB_PLURAL

MERGE_PATCH = "application/merge-patch+json"

# Least privilege: exactly the calls below, plus what kopf needs to watch and post events.
RBAC_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch", "create", "delete"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]},
    {"apiGroups": [GROUP], "resources": [JOB_PLURAL], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [GROUP], "resources": [f"{JOB_PLURAL}/status"], "verbs": ["patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "patch"]},
    # get: the cluster's token, to call its head (autoscaling, draining); never list or watch
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def load_configuration(kubeconfig: str | None) -> kubernetes.client.Configuration:
    """In-cluster config when no kubeconfig is given and we run in a pod; the kubeconfig otherwise."""
    config = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            return config
        except kubernetes.config.ConfigException:
            pass
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=config
    )
    return config


def kopf_connection(config: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    if config.refresh_api_key_hook is not None:
        config.refresh_api_key_hook(config)
    auth = (config.api_key or {}).get("authorization") or (config.api_key or {}).get("BearerToken")
    scheme, token = None, None
    if auth:
        scheme, token = auth.split(" ", 1) if " " in auth else ("Bearer", auth)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert or None,
        insecure=not config.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file or None,
        private_key_path=config.key_file or None,
    )


class Kube:
    """The calls reconcile needs, returning dicts and raising :class:`ApiError`.

    Each is one request through the kubernetes client's transport (``ApiClient``: configuration, TLS,
    bearer token and its refresh, retries) with a JSON body, not through its typed API classes:
    ``CoreV1Api`` and ``BatchV1Api`` load ~250 pydantic model modules (~22 MiB of the operator's ~90 MiB)
    to validate arguments the operator builds as plain dicts anyway.
    """

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = api_client

    def _request(self, method: str, path: str, *, body: Any = None, query: list[tuple[str, str]] | None = None,
                 content_type: str = "application/json", absent: tuple[int, ...] = (), **names: str) -> Obj | None:
        """``method path`` (``{name}`` placeholders filled from ``names``, URL-quoted); None when the answer's
        status is in ``absent`` (404 for a get, 409 for a create), :class:`ApiError` for other failures."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self._api.param_serialize(method, path, path_params=names, query_params=query or [],
                                            header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self._api.call_api(*request)
        raw: bytes = response.read() or b"{}"
        if 200 <= response.status <= 299:
            data: Obj = json.loads(raw)
            return data
        if response.status in absent:
            return None
        message = str(response.reason)
        with contextlib.suppress(ValueError, AttributeError, UnicodeDecodeError):
            message = json.loads(raw).get("message") or message
        raise ApiError(int(response.status), str(response.reason), message)

    def _custom(self, plural: str, *, sub: str = "") -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{plural}" + sub

    @staticmethod
    def _delete_options(uid: str, propagation: str | None = None) -> Obj:
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        if propagation:
            body["propagationPolicy"] = propagation
        return body

    # ---------------------------------------------------------------- SpindleJob and what it owns
    def get_custom(self, plural: str, namespace: str, name: str) -> Obj | None:
        return self._request("GET", self._custom(plural, sub="/{name}"), absent=(404,), namespace=namespace, name=name)

    def create_cluster(self, namespace: str, body: Obj) -> Obj | None:
        """None when a cluster of that name already exists (409)."""
        return self._request("POST", self._custom(PLURAL), body=body, absent=(409,), namespace=namespace)

    def delete_cluster(self, namespace: str, name: str, uid: str) -> bool:
        return self._request("DELETE", self._custom(PLURAL, sub="/{name}"), body=self._delete_options(uid),
                             absent=(404, 409), namespace=namespace, name=name) is not None

    def get_batch_job(self, namespace: str, name: str) -> Obj | None:
        return self._request("GET", "/apis/batch/v1/namespaces/{namespace}/jobs/{name}", absent=(404,),
                             namespace=namespace, name=name)

    def create_batch_job(self, namespace: str, body: Obj) -> Obj | None:
        return self._request("POST", "/apis/batch/v1/namespaces/{namespace}/jobs", body=body, absent=(409,),
                             namespace=namespace)

    def delete_batch_job(self, namespace: str, name: str, uid: str) -> bool:
        """Delete a submitter and its pods (background propagation), exactly this one (uid precondition)."""
        return self._request("DELETE", "/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                             body=self._delete_options(uid, "Background"), absent=(404, 409),
                             namespace=namespace, name=name) is not None

    def patch_job_status(self, namespace: str, name: str, status: Obj) -> None:
        self._request("PATCH", self._custom(JOB_PLURAL, sub="/{name}/status"), body={"status": status},
                      content_type=MERGE_PATCH, namespace=namespace, name=name)

    def get_cluster(self, namespace: str, name: str) -> Obj | None:
        return self.get_custom(PLURAL, namespace, name)

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        pods = self._request("GET", "/api/v1/namespaces/{namespace}/pods",
                             query=[("labelSelector", label_selector)], namespace=namespace)
        items: list[Obj] = (pods or {}).get("items") or []
        return items

    def get_service(self, namespace: str, name: str) -> Obj | None:
        return self._request("GET", "/api/v1/namespaces/{namespace}/services/{name}", absent=(404,),
                             namespace=namespace, name=name)

    def create(self, namespace: str, body: Obj) -> Obj | None:
        """Create a core/v1 pod, service or secret; None when it already exists (409)."""
        plural = {"Pod": "pods", "Service": "services", "Secret": "secrets"}[body["kind"]]
        return self._request("POST", f"/api/v1/namespaces/{{namespace}}/{plural}", body=body, absent=(409,),
                             namespace=namespace)

    def get_secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One value of one Secret, decoded; None when the Secret or the key is missing."""
        secret = self._request("GET", "/api/v1/namespaces/{namespace}/secrets/{name}", absent=(404,),
                               namespace=namespace, name=name)
        value = ((secret or {}).get("data") or {}).get(key)
        return None if value is None else base64.b64decode(value).decode()

    def patch_service(self, namespace: str, name: str, patch: Obj) -> None:
        self._request("PATCH", "/api/v1/namespaces/{namespace}/services/{name}", body=patch,
                      content_type=MERGE_PATCH, namespace=namespace, name=name)

    def delete_pod(self, namespace: str, name: str, uid: str) -> bool:
        """Delete exactly this pod (uid precondition); False when it is already gone or replaced."""
        return self._request("DELETE", "/api/v1/namespaces/{namespace}/pods/{name}", body=self._delete_options(uid),
                             absent=(404, 409), namespace=namespace, name=name) is not None

    def patch_cluster(self, namespace: str, name: str, patch: Obj) -> None:
        self._request("PATCH", self._custom(PLURAL, sub="/{name}"), body=patch, content_type=MERGE_PATCH,
                      namespace=namespace, name=name)

    def patch_cluster_status(self, namespace: str, name: str, status: Obj) -> None:
        self._request("PATCH", self._custom(PLURAL, sub="/{name}/status"), body={"status": status},
                      content_type=MERGE_PATCH, namespace=namespace, name=name)
