"""The SpindleCluster CustomResourceDefinition, built as a dict (the single source for manifests and chart).

Shaped like KubeRay's RayCluster (``headGroupSpec``, ``workerGroupSpecs[]``, ``startParams`` in place of
``rayStartParams``) so a KubeRay manifest ports by changing apiVersion/kind. Pod templates are kept as
preserved unknown fields with only ``spec.containers`` declared: inlining the full PodTemplateSpec schema
is what pushed KubeRay's CRD past the 256 KiB ``kubectl apply`` annotation limit (kuberay #271); the API
server validates the pods themselves when the operator creates them.

Invariants that span fields are CEL rules with human-readable messages, so ``kubectl apply`` of a bad
cluster fails with the reason instead of the operator discovering it later. ``replicas`` outside
``[minReplicas, maxReplicas]`` is allowed and clamped (as KubeRay does), so lowering ``maxReplicas`` below
the current ``replicas`` is one edit, not two.
"""

from __future__ import annotations

from typing import Any

from ._builders import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, Obj

MAX_CLUSTER_NAME = 48  # leaves room for "-head-svc" within a 63-character DNS label
MAX_GROUPS = 32
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
UPSCALING_MODES = ("Conservative", "Default", "Aggressive")


def _pod_template() -> Obj:
    return {
        "type": "object",
        "description": "A PodTemplateSpec. Only spec.containers is checked here; the API server validates "
        "the pods the operator creates from it.",
        "required": ["spec"],
        "properties": {
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "spec": {
                "type": "object",
                "required": ["containers"],
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "containers": {
                        "type": "array",
                        "minItems": 1,
                        "description": "The first container runs the Spindle node agent.",
                        "items": {
                            "type": "object",
                            "required": ["name", "image"],
                            "x-kubernetes-preserve-unknown-fields": True,
                        },
                    },
                },
            },
        },
    }


def _start_params() -> Obj:
    return {
        "type": "object",
        "description": 'Extra `spindle start` flags without leading dashes, e.g. {num-cpus: "4"}; '
        "an empty value gives a bare flag.",
        "maxProperties": 64,
        "additionalProperties": {"type": "string"},
    }


def _worker_group() -> Obj:
    return {
        "type": "object",
        "required": ["groupName", "template"],
        "properties": {
            "groupName": {
                "type": "string",
                "pattern": DNS_LABEL,
                "maxLength": 30,
                "description": "DNS label, unique within the cluster.",
            },
            "replicas": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100000,
                "description": "Desired workers; clamped to [minReplicas, maxReplicas].",
            },
            "minReplicas": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 0},
            "maxReplicas": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 100000},
            "suspend": {"type": "boolean", "description": "Delete this group's pods while true."},
            "startParams": _start_params(),
            "scaleStrategy": {
                "type": "object",
                "properties": {
                    "workersToDelete": {
                        "type": "array",
                        "maxItems": 1000,
                        "items": {"type": "string", "maxLength": 253},
                        "description": "Pods to delete first on the next pass (each drained first when the "
                        "head can drain it); the operator removes each name once its pod is deleted.",
                    },
                },
            },
            "template": _pod_template(),
        },
        "x-kubernetes-validations": [
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must be less than or equal to maxReplicas",
                "fieldPath": ".minReplicas",
            },
        ],
    }


def autoscaler_options() -> Obj:
    """``spec.autoscalerOptions`` (KubeRay's name; ``enabled`` plays ``enableInTreeAutoscaling``)."""
    return {
        "type": "object",
        "description": "Demand-driven autoscaling of the worker groups within [minReplicas, maxReplicas]. The "
        "operator polls the head and drains a worker before it deletes its pod.",
        "properties": {
            "enabled": {"type": "boolean", "default": False},
            "idleTimeoutSeconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 86400,
                "default": 60,
                "description": "A worker idle this long is removed (down to minReplicas).",
            },
            "upscalingMode": {
                "type": "string",
                "enum": list(UPSCALING_MODES),
                "default": "Default",
                "description": "Conservative adds at most the pending demand, one step at a time; Default "
                "what the demand needs; Aggressive up to maxReplicas at once.",
            },
            "drainTimeoutSeconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 86400,
                "default": 600,
                "description": "How long a worker being removed may keep running its tasks before its pod "
                "is deleted anyway (also for scale-downs made by editing replicas).",
            },
        },
    }


def _spec() -> Obj:
    return {
        "type": "object",
        "required": ["headGroupSpec"],
        "properties": {
            "enableInTreeAutoscaling": {
                "type": "boolean",
                "description": "KubeRay's switch, accepted so RayCluster manifests port: same as "
                "autoscalerOptions.enabled.",
            },
            "autoscalerOptions": autoscaler_options(),
            "suspend": {
                "type": "boolean",
                "description": "Delete all pods while true; resume recreates them.",
            },
            "rolloutStrategy": {
                "type": "object",
                "description": "How spec edits reach running pods: workers a bounded number at a time, head "
                "last. type None leaves running pods alone.",
                "properties": {
                    "type": {"type": "string", "enum": ["Rolling", "None"], "default": "Rolling"},
                    "maxUnavailable": {"type": "integer", "minimum": 1, "default": 1},
                },
            },
            "headGroupSpec": {
                "type": "object",
                "required": ["template"],
                "properties": {
                    "serviceType": {
                        "type": "string",
                        "enum": ["ClusterIP", "NodePort", "LoadBalancer"],
                        "default": "ClusterIP",
                    },
                    "startParams": _start_params(),
                    "template": _pod_template(),
                },
            },
            "workerGroupSpecs": {
                "type": "array",
                "maxItems": MAX_GROUPS,
                "items": _worker_group(),
                "x-kubernetes-validations": [
                    {
                        "rule": "self.all(g, self.exists_one(h, h.groupName == g.groupName))",
                        "message": "workerGroupSpecs[].groupName values must be unique",
                    },
                ],
            },
        },
    }


def conditions_schema() -> Obj:
    """Kubernetes' standard ``status.conditions`` list (one entry per type), shared by every Spindle CRD."""
    string = {"type": "string"}
    return {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": string,
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": string,
                "message": string,
                "lastTransitionTime": {"type": "string", "format": "date-time"},
            },
        },
    }


def _autoscaler_status() -> Obj:
    string = {"type": "string"}
    return {
        "type": "object",
        "description": "What the autoscaler last decided and the drains it waits for.",
        "properties": {
            "lastDecision": string,
            "reason": string,
            "time": {"type": "string", "format": "date-time"},
            "headError": string,
            "pendingDrains": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["podName", "nodeId", "group"],
                    "properties": {
                        "podName": string,
                        "nodeId": string,
                        "group": string,
                        "since": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    }


def _status() -> Obj:
    string = {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "state": {"type": "string", "enum": ["Pending", "Ready", "Suspended", "Failed"]},
            "reason": string,
            "observedGeneration": {"type": "integer", "format": "int64"},
            "desiredWorkerReplicas": {"type": "integer"},
            "readyWorkerReplicas": {"type": "integer"},
            "head": {
                "type": "object",
                "properties": {k: string for k in ("podName", "podIP", "serviceName", "serviceIP")},
            },
            "endpoints": {"type": "object", "additionalProperties": string},
            "autoscaler": _autoscaler_status(),
            "conditions": conditions_schema(),
        },
    }


def _columns() -> list[dict[str, Any]]:
    return [
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredWorkerReplicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyWorkerReplicas"},
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
        {"name": "Head IP", "type": "string", "jsonPath": ".status.head.podIP", "priority": 0},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd() -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["spindle"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A Spindle cluster: one head pod and groups of worker pods.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _spec(),
                                "status": _status(),
                            },
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"self.metadata.name.matches('{DNS_LABEL}')",
                                    "message": "metadata.name must be a DNS label (lowercase letters, digits "
                                    "and '-', starting with a letter): it names the cluster's service",
                                },
                                {
                                    "rule": f"self.metadata.name.size() <= {MAX_CLUSTER_NAME}",
                                    "message": f"metadata.name must be at most {MAX_CLUSTER_NAME} characters "
                                    "(it prefixes the names of the cluster's pods and service)",
                                },
                            ],
                        },
                    },
                },
            ],
        },
    }
