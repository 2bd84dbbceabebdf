"""Pure builders for everything the operator creates for a SpindleCluster: pods, the head service, the
token secret.

Builders take the cluster object (a plain dict, as the API returns it) and settings, and return plain dicts
ready to POST. Keeping them free of I/O and of the kubernetes client's model classes means they are tested
by comparing dicts, and the reconcile logic can reason about "what the pod would look like" without a
server. Every child carries a controller ownerReference to the cluster so the garbage collector removes
children when the cluster is deleted, and the labels reconcile selects by.

The template hash is computed from what the *user* wrote (pod template + start params), not from the pod
the operator renders: upgrading the operator must not roll every running cluster (a KubeRay lesson).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._settings import OperatorSettings

GROUP = "spindle.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SpindleCluster"
PLURAL = "spindleclusters"
SINGULAR = "spindlecluster"
SHORT_NAMES = ["spc"]

LABEL_CLUSTER = "spindle.dev/cluster"
LABEL_NODE_TYPE = "spindle.dev/node-type"
LABEL_GROUP = "spindle.dev/group"
LABEL_HASH = "spindle.dev/template-hash"
LABEL_POD_NAME = "spindle.dev/pod-name"  # a Spindle node label (docs/CONVENTIONS.md), not a pod label
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "spindle-operator"

HEAD = "head"
WORKER = "worker"
HEAD_GROUP = "head"
MAIN_CONTAINER_INDEX = 0
WAIT_CONTAINER = "wait-for-head"
TOKEN_KEY = "token"

Obj = dict[str, Any]

# Runs in the worker's own image before the agent: wait (with backoff) until the head's gRPC port accepts
# connections, so workers never race the head. The service only routes to a Ready head.
WAIT_FOR_HEAD_SCRIPT = """\
import os, socket, sys, time
host, port = os.environ["SPINDLE_ADDRESS"].rsplit(":", 1)
delay = 0.5
while True:
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        break
    except OSError as exc:
        print(f"waiting for spindle head {host}:{port}: {exc}", file=sys.stderr, flush=True)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
"""


def head_service_name(cluster_name: str) -> str:
    return f"{cluster_name}-head-svc"


def token_secret_name(cluster_name: str) -> str:
    return f"{cluster_name}-spindle-token"


def head_address(cluster: Mapping[str, Any], settings: OperatorSettings) -> str:
    meta = cluster["metadata"]
    host = f"{head_service_name(meta['name'])}.{meta['namespace']}.svc"
    if settings.node.cluster_domain:
        host = f"{host}.{settings.node.cluster_domain}"
    return f"{host}:{settings.ports.gcs}"


def owner_reference(cluster: Mapping[str, Any]) -> Obj:
    meta = cluster["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def cluster_labels(cluster_name: str) -> dict[str, str]:
    return {LABEL_CLUSTER: cluster_name, LABEL_MANAGED_BY: MANAGED_BY}


def template_hash(group_spec: Mapping[str, Any]) -> str:
    """A short, stable hash of the user-facing parts of a group that end up in its pods."""
    relevant = {"template": group_spec.get("template", {}), "startParams": group_spec.get("startParams", {})}
    blob = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def start_flags(params: Mapping[str, Any]) -> list[str]:
    """``{"num-cpus": "2", "block": ""}`` → ``["--num-cpus", "2", "--block"]`` (sorted, deterministic)."""
    flags: list[str] = []
    for key in sorted(params, key=lambda k: k.lstrip("-")):
        value = params[key]
        flags.append(f"--{key.lstrip('-')}")
        if value not in ("", None):
            flags.append(str(value).lower() if isinstance(value, bool) else str(value))
    return flags


def cpu_quantity(value: Any) -> str | None:
    """A Kubernetes CPU quantity ("2", "500m", 1.5) as a plain number string for ``--num-cpus``."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None
    return f"{number:g}"


def inferred_params(container: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``startParams`` plus ``num-cpus``/``num-gpus`` from the container's limits (else requests) unless set.

    Without this an agent in a 2-CPU pod on a 64-core node would offer 64 CPUs (KubeRay does the same).
    """
    merged = dict(params)
    keys = {k.lstrip("-") for k in params}
    resources = container.get("resources") or {}
    amounts = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
    if "num-cpus" not in keys and "cpu" in amounts:
        cpus = cpu_quantity(amounts["cpu"])
        if cpus is not None:
            merged["num-cpus"] = cpus
    if "num-gpus" not in keys and "nvidia.com/gpu" in amounts:
        merged["num-gpus"] = str(amounts["nvidia.com/gpu"])
    return merged


def _merge_env(container: Obj, env: Sequence[Obj]) -> None:
    """Prepend operator env vars; a variable the user already set wins."""
    existing = {e.get("name") for e in container.get("env", [])}
    container["env"] = [e for e in env if e["name"] not in existing] + list(container.get("env", []))


def node_labels_value(group: str) -> str:
    """``SPINDLE_NODE_LABELS`` of a pod: how the head (and the autoscaler) map a Spindle node to its pod.

    ``$(SPINDLE_POD_NAME)`` is expanded by the kubelet from the downward-API variable defined before it.
    """
    return json.dumps({LABEL_POD_NAME: "$(SPINDLE_POD_NAME)", LABEL_GROUP: group}, separators=(",", ":"))


def _agent_env(cluster: Mapping[str, Any], settings: OperatorSettings, group: str) -> list[Obj]:
    name = cluster["metadata"]["name"]
    return [
        {"name": "SPINDLE_ADDRESS", "value": head_address(cluster, settings)},
        {
            "name": "SPINDLE_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": token_secret_name(name), "key": TOKEN_KEY}},
        },
        {"name": "SPINDLE_NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SPINDLE_CLUSTER_NAME", "value": name},
        {"name": "SPINDLE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SPINDLE_NODE_LABELS", "value": node_labels_value(group)},
    ]


SHM_VOLUME = "spindle-shm"


def build_pod(
    cluster: Mapping[str, Any], node_type: str, group_spec: Mapping[str, Any], settings: OperatorSettings
) -> Obj:
    """A head pod (``node_type == "head"``) or a worker pod of ``group_spec``, as a dict to POST."""
    cluster_name = cluster["metadata"]["name"]
    group = HEAD_GROUP if node_type == HEAD else group_spec["groupName"]
    template = copy.deepcopy(dict(group_spec.get("template") or {}))
    tmeta = template.get("metadata") or {}
    spec: Obj = template.get("spec") or {}
    containers: list[Obj] = spec.setdefault("containers", [])
    if not containers:
        raise ValueError(f"group {group!r} of cluster {cluster_name!r} has no containers")

    labels = {
        **(tmeta.get("labels") or {}),
        **cluster_labels(cluster_name),
        LABEL_NODE_TYPE: node_type,
        LABEL_GROUP: group,
        LABEL_HASH: template_hash(group_spec),
    }
    prefix = f"{cluster_name}-head-" if node_type == HEAD else f"{cluster_name}-{group}-worker-"
    metadata: Obj = {
        "generateName": prefix,
        "namespace": cluster["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(cluster)],
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])

    main = containers[MAIN_CONTAINER_INDEX]
    env = _agent_env(cluster, settings, group)
    _merge_env(main, env)
    flags = start_flags(inferred_params(main, group_spec.get("startParams") or {}))
    ports = settings.ports
    if "command" not in main and "args" not in main:
        if node_type == HEAD:
            # every address of the pod: the Service reaches the pod IP, `kubectl port-forward` reaches its
            # loopback; the pod's network namespace is its own and every endpoint checks the token
            main["command"] = [*settings.node.agent_command, "--head", "--host", "0.0.0.0", "--port", str(ports.gcs),
                               "--block"]
        else:
            main["command"] = [*settings.node.agent_command, "--address", "$(SPINDLE_ADDRESS)", "--block"]
        main["command"] += flags
    _mount_shared_memory(spec, main)
    if node_type == HEAD:
        declared = {p.get("containerPort") for p in main.get("ports", [])}
        main["ports"] = list(main.get("ports", [])) + [
            {"name": pname, "containerPort": port, "protocol": "TCP"}
            for pname, port in ports.named().items()
            if port not in declared
        ]
        main.setdefault(
            "readinessProbe",
            {"tcpSocket": {"port": ports.gcs}, "periodSeconds": 5, "failureThreshold": 3},
        )
    else:
        inits: list[Obj] = list(spec.get("initContainers", []))
        if not any(c.get("name") == WAIT_CONTAINER for c in inits):
            wait: Obj = {
                "name": WAIT_CONTAINER,
                "image": main["image"],
                "command": [settings.node.python, "-c", WAIT_FOR_HEAD_SCRIPT],
                "env": [e for e in env if e["name"] == "SPINDLE_ADDRESS"],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
            }
            if main.get("imagePullPolicy"):
                wait["imagePullPolicy"] = main["imagePullPolicy"]
            if main.get("securityContext"):
                wait["securityContext"] = copy.deepcopy(main["securityContext"])
            spec["initContainers"] = [wait, *inits]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _mount_shared_memory(spec: Obj, main: Obj) -> None:
    """A memory-backed /dev/shm for the object store, unless the template brings its own.

    A container's default /dev/shm is 64 MiB, so without this almost every object would spill to disk;
    memory-backed emptyDir pages count against the pod's memory limit, which the store's default budget
    (30% of memory) already follows.
    """
    mounts: list[Obj] = main.setdefault("volumeMounts", [])
    if any(m.get("mountPath") == "/dev/shm" for m in mounts):
        return
    volumes: list[Obj] = spec.setdefault("volumes", [])
    if not any(v.get("name") == SHM_VOLUME for v in volumes):
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
    mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})


def service_spec(cluster: Mapping[str, Any], settings: OperatorSettings) -> Obj:
    name = cluster["metadata"]["name"]
    head = cluster.get("spec", {}).get("headGroupSpec", {})
    return {
        "type": head.get("serviceType") or "ClusterIP",
        "selector": {LABEL_CLUSTER: name, LABEL_NODE_TYPE: HEAD},
        "ports": [
            {"name": pname, "port": port, "targetPort": port, "protocol": "TCP"}
            for pname, port in settings.ports.named().items()
        ],
    }


def build_head_service(cluster: Mapping[str, Any], settings: OperatorSettings) -> Obj:
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": head_service_name(name),
            "namespace": cluster["metadata"]["namespace"],
            "labels": {**cluster_labels(name), LABEL_NODE_TYPE: HEAD},
            "ownerReferences": [owner_reference(cluster)],
        },
        "spec": service_spec(cluster, settings),
    }


def build_token_secret(cluster: Mapping[str, Any], token: str) -> Obj:
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": token_secret_name(name),
            "namespace": cluster["metadata"]["namespace"],
            "labels": cluster_labels(name),
            "ownerReferences": [owner_reference(cluster)],
        },
        "stringData": {TOKEN_KEY: token},
    }
