"""Autoscaling: ``sdk.request_resources`` (Ray's API) and the pure scaling ``policy`` both providers share.

The head reports demand and idleness (``GET /api/autoscaler/state``) and drains nodes; the operator
(Kubernetes) and the local provider (``spindle start --head --autoscale-local MAX``) decide with
``policy.decide`` and add or remove nodes. See docs/CONVENTIONS.md, "Autoscaler".
"""

from spindle.autoscaler import sdk

__all__ = ["sdk"]
