"""Plain-dict SpindleClusters and pods for the operator's pure unit tests."""

from __future__ import annotations

import copy
from typing import Any

from spindle_operator import OperatorSettings
from spindle_operator._builders import HEAD, WORKER, build_pod, template_hash

SETTINGS = OperatorSettings()
UID = "0000-cluster-uid"
NS = "ns"


def container(name: str = "spindle", image: str = "spindle:test") -> dict[str, Any]:
    return {"name": name, "image": image}


def template(image: str = "spindle:test") -> dict[str, Any]:
    return {"spec": {"containers": [container(image=image)]}}


def group(name: str = "workers", replicas: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": 0,
        "maxReplicas": 10,
        "template": template(),
        **extra,
    }


def cluster(*groups: dict[str, Any], name: str = "c", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "spindle.dev/v1alpha1",
        "kind": "SpindleCluster",
        "metadata": {"name": name, "namespace": NS, "uid": UID, "generation": 1, "resourceVersion": "7"},
        "spec": {"headGroupSpec": {"template": template()}, "workerGroupSpecs": list(groups), **spec},
    }


_counter = [0]


def pod(
    c: dict[str, Any],
    node_type: str = WORKER,
    group_name: str | None = "workers",
    *,
    name: str | None = None,
    phase: str = "Running",
    ready: bool = True,
    created: str | None = None,
    outdated: bool = False,
    terminating: bool = False,
    owner_uid: str = UID,
) -> dict[str, Any]:
    """A pod as the API server would return it after the operator created it from ``c``'s spec."""
    _counter[0] += 1
    n = _counter[0]
    if node_type == HEAD:
        spec = c["spec"]["headGroupSpec"]
    else:
        spec = next(g for g in c["spec"]["workerGroupSpecs"] if g["groupName"] == group_name)
    body = build_pod(c, node_type, spec, SETTINGS)
    body = copy.deepcopy(body)
    meta = body["metadata"]
    meta["name"] = name or f"{meta.pop('generateName')}{n:05d}"
    meta.pop("generateName", None)
    meta["uid"] = f"uid-{meta['name']}"
    meta["creationTimestamp"] = created or f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z"
    meta["ownerReferences"][0]["uid"] = owner_uid
    if outdated:
        meta["labels"]["spindle.dev/template-hash"] = "0" * 16
    else:
        assert meta["labels"]["spindle.dev/template-hash"] == template_hash(spec)
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    body["status"] = {"phase": phase, "conditions": conditions, "podIP": f"10.0.0.{n % 250}"}
    return body


def service(c: dict[str, Any]) -> dict[str, Any]:
    from spindle_operator._builders import build_head_service

    body = build_head_service(c, SETTINGS)
    body["spec"]["clusterIP"] = "10.96.0.10"
    return body
