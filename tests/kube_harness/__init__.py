"""A real kube-apiserver (no kubelet) for tests; see harness.py, used via tests/plugins/kube.py."""

from ._wait import wait_for
from .harness import (
    BinariesMissing,
    KubeAPI,
    KubectlError,
    StartupError,
    bin_dir,
    running_cluster,
)

__all__ = [
    "BinariesMissing",
    "KubeAPI",
    "KubectlError",
    "StartupError",
    "bin_dir",
    "running_cluster",
    "wait_for",
]
