"""One settings object for the whole operator.

Every tunable the operator has lives here, grouped by concern, so handlers and builders receive their
configuration as an argument instead of reading globals or the environment (dask-kubernetes reads global
config inside handlers and hard-codes ``svc.cluster.local``; we do neither). The CLI and the
``kopf run -m spindle_operator`` path both build it with :meth:`OperatorSettings.from_env`; tests build it
directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Ports:
    """Ports of a Spindle head, as fixed by docs/CONVENTIONS.md."""

    gcs: int = 6380
    dashboard: int = 8265
    client: int = 10001
    metrics: int = 8080

    def named(self) -> dict[str, int]:
        return {"gcs": self.gcs, "dashboard": self.dashboard, "client": self.client, "metrics": self.metrics}


@dataclasses.dataclass(frozen=True)
class ReconcileSettings:
    """How often and how carefully clusters are reconciled."""

    # A cluster is re-reconciled at least this often even without watch events (level-triggered resync).
    resync_seconds: float = 30.0
    # Backoff after a failed reconcile pass: first delay, factor, cap.
    error_backoff_initial: float = 0.5
    error_backoff_max: float = 30.0
    # Default number of worker pods a rollout may take down at once (spec.rolloutStrategy overrides).
    default_max_unavailable: int = 1


@dataclasses.dataclass(frozen=True)
class WatchSettings:
    """What the operator watches and how it reaches the API server."""

    namespaces: tuple[str, ...] = ()
    clusterwide: bool = True
    # Path to a kubeconfig; None means in-cluster config, then the default kubeconfig.
    kubeconfig: str | None = None
    # e.g. "http://0.0.0.0:8081/healthz"; None disables the liveness endpoint.
    liveness_endpoint: str | None = None


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """What goes into the pods the operator creates."""

    # Command that starts a node agent; head and worker flags are appended (see docs/CONVENTIONS.md).
    agent_command: tuple[str, ...] = ("spindle", "start")
    # Python used by the wait-for-head init container (the worker image must provide it).
    python: str = "python"
    # Cluster DNS domain suffix for the head address; "" gives "<svc>.<ns>.svc", which resolves everywhere.
    cluster_domain: str = ""


@dataclasses.dataclass(frozen=True)
class AutoscalerSettings:
    """How the operator talks to heads to autoscale and to drain workers before deleting them."""

    # Seconds between two looks at an autoscaled cluster's head (KubeRay's autoscaler loop is 5-10 s).
    interval_seconds: float = 5.0
    # The head's HTTP API; {service}, {namespace}, {port} (the dashboard port) and {domain} are filled in.
    # Tests point it at a head process on the host.
    head_url: str = "http://{service}.{namespace}.svc{domain}:{port}"
    # One HTTP call to a head; a head that does not answer in time counts as unreachable.
    request_timeout_seconds: float = 5.0
    # How often a pass looks again while a worker it wants to delete is draining.
    drain_poll_seconds: float = 2.0


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    ports: Ports = dataclasses.field(default_factory=Ports)
    reconcile: ReconcileSettings = dataclasses.field(default_factory=ReconcileSettings)
    watch: WatchSettings = dataclasses.field(default_factory=WatchSettings)
    node: NodeSettings = dataclasses.field(default_factory=NodeSettings)
    autoscaler: AutoscalerSettings = dataclasses.field(default_factory=AutoscalerSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from ``SPINDLE_OPERATOR_*`` variables (used by ``kopf run -m spindle_operator``)."""
        env = os.environ if environ is None else environ
        namespaces = tuple(n for n in env.get("SPINDLE_OPERATOR_NAMESPACES", "").split(",") if n)
        return cls(
            reconcile=ReconcileSettings(
                resync_seconds=float(env.get("SPINDLE_OPERATOR_RESYNC_SECONDS", "30")),
            ),
            watch=WatchSettings(
                namespaces=namespaces,
                clusterwide=not namespaces,
                kubeconfig=env.get("SPINDLE_OPERATOR_KUBECONFIG") or None,
                liveness_endpoint=env.get("SPINDLE_OPERATOR_LIVENESS") or None,
            ),
            node=NodeSettings(cluster_domain=env.get("SPINDLE_OPERATOR_CLUSTER_DOMAIN", "")),
            autoscaler=AutoscalerSettings(
                interval_seconds=float(env.get("SPINDLE_OPERATOR_AUTOSCALER_INTERVAL", "5")),
                head_url=env.get("SPINDLE_OPERATOR_HEAD_URL") or AutoscalerSettings.head_url,
            ),
        )
