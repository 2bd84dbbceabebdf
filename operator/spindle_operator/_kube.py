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
from collections.abc import Callable
from typing import Any, cast

import kopf
import kubernetes

from ._builders import GROUP, PLURAL, VERSION, Obj
from ._job_builders import JOB_PLURAL

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


def _api_error(exc: kubernetes.client.ApiException) -> ApiError:
    message = str(exc.reason)
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(exc.body or "{}").get("message") or message
    return ApiError(int(exc.status or 0), str(exc.reason), message)


def _json(response: Any) -> Obj:
    data: Obj = json.loads(response.data)
    return data


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
    """The calls reconcile needs, returning dicts and raising :class:`ApiError`."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)

    # ---------------------------------------------------------------- SpindleJob and what it owns
    def get_custom(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            return _json(self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc) from exc

    def create_cluster(self, namespace: str, body: Obj) -> Obj | None:
        """None when a cluster of that name already exists (409)."""
        try:
            return _json(self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return None
            raise _api_error(exc) from exc

    def delete_cluster(self, namespace: str, name: str, uid: str) -> bool:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name,
                body=kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid=uid)))
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise _api_error(exc) from exc

    def get_batch_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return _json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc) from exc

    def create_batch_job(self, namespace: str, body: Obj) -> Obj | None:
        try:
            return _json(self.batch.create_namespaced_job(namespace, cast(Any, body), _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return None
            raise _api_error(exc) from exc

    def delete_batch_job(self, namespace: str, name: str, uid: str) -> bool:
        """Delete a submitter and its pods (background propagation), exactly this one (uid precondition)."""
        try:
            self.batch.delete_namespaced_job(
                name, namespace,
                body=kubernetes.client.V1DeleteOptions(propagation_policy="Background",
                                                       preconditions=kubernetes.client.V1Preconditions(uid=uid)),
                _preload_content=False)
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise _api_error(exc) from exc

    def patch_job_status(self, namespace: str, name: str, status: Obj) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, JOB_PLURAL, name,
                                                              {"status": status})
        except kubernetes.client.ApiException as exc:
            raise _api_error(exc) from exc

    def get_cluster(self, namespace: str, name: str) -> Obj | None:
        try:
            return _json(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc) from exc

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        try:
            items: list[Obj] = _json(
                self.core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False)
            )["items"]
            return items
        except kubernetes.client.ApiException as exc:
            raise _api_error(exc) from exc

    def get_service(self, namespace: str, name: str) -> Obj | None:
        try:
            return _json(self.core.read_namespaced_service(name, namespace, _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc) from exc

    def create(self, namespace: str, body: Obj) -> Obj | None:
        """Create a core/v1 pod, service or secret; None when it already exists (409)."""
        kind = body["kind"]
        calls: dict[str, Callable[..., Any]] = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "Secret": self.core.create_namespaced_secret,
        }
        call = calls[kind]
        try:
            return _json(call(namespace, body, _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return None
            raise _api_error(exc) from exc

    def get_secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One value of one Secret, decoded; None when the Secret or the key is missing."""
        try:
            secret = _json(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc) from exc
        value = (secret.get("data") or {}).get(key)
        return None if value is None else base64.b64decode(value).decode()

    def patch_service(self, namespace: str, name: str, patch: Obj) -> None:
        try:
            self.core.patch_namespaced_service(name, namespace, patch, _content_type="application/merge-patch+json")
        except kubernetes.client.ApiException as exc:
            raise _api_error(exc) from exc

    def delete_pod(self, namespace: str, name: str, uid: str) -> bool:
        """Delete exactly this pod (uid precondition); False when it is already gone or replaced."""
        try:
            self.core.delete_namespaced_pod(
                name,
                namespace,
                body=kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid=uid)),
                _preload_content=False,
            )
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise _api_error(exc) from exc

    def patch_cluster(self, namespace: str, name: str, patch: Obj) -> None:
        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        except kubernetes.client.ApiException as exc:
            raise _api_error(exc) from exc

    def patch_cluster_status(self, namespace: str, name: str, status: Obj) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        except kubernetes.client.ApiException as exc:
            raise _api_error(exc) from exc
