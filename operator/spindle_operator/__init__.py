"""Spindle's Kubernetes operator: reconciles ``SpindleCluster`` (spindle.dev/v1alpha1) objects.

Run it with the ``spindle-operator`` command or ``kopf run -m spindle_operator``; importing this package
registers the handlers into kopf's default registry for the latter (settings from ``SPINDLE_OPERATOR_*``
environment variables). Everything else is private (``_reconcile`` is the pure decision logic,
``_builders`` the manifests, ``_controller`` the I/O shell); ``manifests`` writes the YAML in manifests/.
"""

from __future__ import annotations

import kopf

from ._crd import build_crd
from ._handlers import operate, register
from ._settings import NodeSettings, OperatorSettings, Ports, ReconcileSettings, WatchSettings

__version__ = "0.1.0"

__all__ = [
    "NodeSettings",
    "OperatorSettings",
    "Ports",
    "ReconcileSettings",
    "WatchSettings",
    "__version__",
    "build_crd",
    "operate",
    "register",
]

register(kopf.get_default_registry(), OperatorSettings.from_env())
