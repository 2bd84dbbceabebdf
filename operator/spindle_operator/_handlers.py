"""Kopf wiring: thin handlers that only configure kopf and poke the :class:`Controller`.

Handlers are registered into an explicit registry so tests can run several operators (e.g. an old and a
restarted one) in one process; ``kopf run -m spindle_operator`` uses kopf's default registry, filled by the
package ``__init__``. Kopf is configured for least privilege: no CRD or namespace scanning (the resources
are known), no peering objects (one replica, ``Recreate`` strategy), and nothing persisted on the objects,
since the controller keeps no progress state anywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import kopf

from ._builders import GROUP, LABEL_CLUSTER, PLURAL, VERSION, Obj
from ._controller import Controller
from ._job_builders import JOB_PLURAL, LABEL_JOB
from ._job_controller import JobController
from ._kube import kopf_connection, load_configuration
from ._settings import OperatorSettings


def _kopf_emit(cluster: Obj, type_: str, reason: str, message: str) -> None:
    kopf.event(cast(Any, cluster), type=type_, reason=reason, message=message[:1000])


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.peering.mandatory = False
    # Only our explicit events reach the cluster's event list, not kopf's own handler chatter.
    settings.posting.level = logging.WARNING
    # Watch only the pods we label, filtered by the API server: a big cluster's other pods never reach us.
    if hasattr(settings.watching, "label_selectors"):  # kopf >= 1.45
        settings.watching.label_selectors["v1", "pods"] = LABEL_CLUSTER
        settings.watching.label_selectors["batch/v1", "jobs"] = LABEL_JOB
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> Controller:
    controller = Controller(settings, emit=_kopf_emit)
    jobs = JobController(settings, emit=_kopf_emit)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf_connection(load_configuration(controller.settings.watch.kubeconfig))

    @kopf.on.event(GROUP, VERSION, PLURAL, id="cluster_changed", registry=registry)
    async def cluster_changed(name: str, namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        if namespace:
            controller.poke(namespace, name)
            if labels.get(LABEL_JOB):  # a job's own cluster: its readiness moves the job on
                jobs.poke(namespace, labels[LABEL_JOB])

    @kopf.on.event(GROUP, VERSION, JOB_PLURAL, id="job_changed", registry=registry)
    async def job_changed(name: str, namespace: str | None, **_: Any) -> None:
        if namespace:
            jobs.poke(namespace, name)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_JOB: kopf.PRESENT}, id="submitter_changed",
                   registry=registry)
    async def submitter_changed(labels: Mapping[str, str], namespace: str | None, **_: Any) -> None:
        if namespace:
            jobs.poke(namespace, labels[LABEL_JOB])

    @kopf.on.event("", "v1", "pods", labels={LABEL_CLUSTER: kopf.PRESENT}, id="pod_changed", registry=registry)
    async def pod_changed(labels: Mapping[str, str], namespace: str | None, **_: Any) -> None:
        if namespace:
            controller.poke(namespace, labels[LABEL_CLUSTER])

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await controller.stop()
        await jobs.stop()

    return controller


async def operate(
    settings: OperatorSettings,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or forever), with its own registry."""
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings)
    await kopf.operator(
        registry=registry,
        settings=kopf_settings,
        standalone=True,
        clusterwide=settings.watch.clusterwide,
        namespaces=list(settings.watch.namespaces),
        liveness_endpoint=settings.watch.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
