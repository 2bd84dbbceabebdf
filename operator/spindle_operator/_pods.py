"""Small, pure predicates over pod dicts, shared by reconcile and status.

Kept apart so both read a pod the same way: a pod is *ours* only if its controller ownerReference points at
this cluster's uid (a same-named cluster being recreated must not adopt the old one's pods), *terminating*
once it has a deletionTimestamp, *finished* once its phase is Failed or Succeeded, and *ready* when it runs
and its Ready condition is True.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._builders import LABEL_GROUP, LABEL_HASH, LABEL_NODE_TYPE


def name(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def uid(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"].get("uid", ""))


def created(pod: Mapping[str, Any]) -> str:
    # RFC 3339 UTC timestamps with a fixed format sort lexicographically.
    return str(pod["metadata"].get("creationTimestamp") or "")


def labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return pod["metadata"].get("labels") or {}


def node_type(pod: Mapping[str, Any]) -> str | None:
    return labels(pod).get(LABEL_NODE_TYPE)


def group(pod: Mapping[str, Any]) -> str | None:
    return labels(pod).get(LABEL_GROUP)


def template_hash(pod: Mapping[str, Any]) -> str | None:
    return labels(pod).get(LABEL_HASH)


def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def owned_by(pod: Mapping[str, Any], owner_uid: str) -> bool:
    return any(
        ref.get("uid") == owner_uid and ref.get("controller") for ref in pod["metadata"].get("ownerReferences") or []
    )


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_finished(pod: Mapping[str, Any]) -> bool:
    return phase(pod) in ("Failed", "Succeeded")


def is_alive(pod: Mapping[str, Any]) -> bool:
    return not is_terminating(pod) and not is_finished(pod)


def is_ready(pod: Mapping[str, Any]) -> bool:
    if not is_alive(pod) or phase(pod) != "Running":
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def newest_first(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: (created(p), name(p)), reverse=True)


def oldest_first(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: (created(p), name(p)))
