"""``spindle-operator``: the operator's command line (the container entry point).

Equivalent to ``kopf run -m spindle_operator --standalone`` with the same flags, but with its own registry
and the settings built from flags, so the deployment does not depend on kopf's CLI details.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from collections.abc import Sequence

import kopf

from ._handlers import operate
from ._settings import AutoscalerSettings, OperatorSettings, ReconcileSettings, WatchSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spindle-operator", description="Operator for SpindleCluster.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8081/healthz",
    )
    parser.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        default=None,
        help="serve Prometheus metrics (reconcile counts, durations, managed objects) at /metrics, e.g. 0.0.0.0:8080",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster config)")
    parser.add_argument("--resync-seconds", type=float, default=ReconcileSettings.resync_seconds)
    parser.add_argument("--autoscaler-interval", type=float, default=AutoscalerSettings.interval_seconds,
                        metavar="SECONDS", help="seconds between two looks at an autoscaled cluster's head")
    parser.add_argument("--head-url", default=AutoscalerSettings.head_url, metavar="TEMPLATE",
                        help="a head's HTTP API; {service}, {namespace}, {domain} and {port} are filled in "
                        "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    base = OperatorSettings()
    namespaces = tuple(args.namespace)
    return dataclasses.replace(
        base,
        reconcile=dataclasses.replace(base.reconcile, resync_seconds=args.resync_seconds),
        autoscaler=dataclasses.replace(base.autoscaler, interval_seconds=args.autoscaler_interval,
                                       head_url=args.head_url),
        watch=WatchSettings(
            namespaces=namespaces,
            clusterwide=not namespaces,
            kubeconfig=args.kubeconfig,
            liveness_endpoint=args.liveness,
        ),
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("spindle_operator").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:  # one "Handler succeeded" line per watch event is noise, not information
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.metrics_address:
        from ._metrics import serve

        try:
            serve(args.metrics_address)
        except (ValueError, OSError) as e:
            raise SystemExit(f"spindle-operator: cannot serve metrics: {e}") from None
    asyncio.run(operate(settings_from_args(args)))
