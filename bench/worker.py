"""The measured side: ``python -m bench.worker --impl ray|spindle --workload NAME [--smoke]``.

Runs exactly one workload in this fresh interpreter and prints one ``BENCH_RESULT <json>`` line on
stdout for the orchestrator. A fresh interpreter per workload keeps one implementation's leftovers
(worker pools, caches, leaked objects) from colouring the next measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import traceback
from typing import Any

from bench import spec
from bench.workloads import NEEDS_OWN_INIT, REGISTRY, Context

MARKER = "BENCH_RESULT "

# Importing a workload module registers its workloads.
for _module in ("cluster", "micro", "objects", "remote", "scale"):
    importlib.import_module(f"bench.workloads.{_module}")

# Both implementations run quietly and without extras the comparison does not need.
INIT_KWARGS: dict[str, dict[str, Any]] = {
    "ray": {"include_dashboard": False, "log_to_driver": False},
    "spindle": {"log_to_driver": False},
}


def run(impl: str, name: str, sizes: spec.Sizes, address: str | None, dashboard: bool = True) -> dict[str, Any]:
    module = importlib.import_module(impl)
    # Connecting to a running cluster takes no options about what to start.
    kwargs = {"address": address, "log_to_driver": False} if address else dict(INIT_KWARGS[impl])
    if not dashboard and not address:
        kwargs["include_dashboard"] = False
    ctx = Context(ray=module, impl=impl, sizes=sizes, init_kwargs=kwargs)
    if name not in NEEDS_OWN_INIT:
        ctx.init()
    try:
        return dict(REGISTRY[name](ctx))
    finally:
        module.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=sorted(INIT_KWARGS), required=True)
    parser.add_argument("--workload", choices=sorted(REGISTRY), required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--address", help="connect to this running cluster instead")
    parser.add_argument("--no-dashboard", action="store_true", help="init(include_dashboard=False)")
    parser.add_argument("--scale-actors", type=int, default=None, help="actors in scale_1k_actors")
    args = parser.parse_args(argv)
    sizes = spec.SMOKE if args.smoke else spec.FULL
    if args.scale_actors:
        sizes = dataclasses.replace(sizes, scale_actors=args.scale_actors)
    try:
        metrics = run(
            args.impl,
            args.workload,
            sizes,
            args.address,
            not args.no_dashboard,
        )
        out: dict[str, Any] = {"ok": True, "metrics": metrics}
    # Any failure, including SystemExit from a runtime, must still produce a result line.
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc()
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    print(MARKER + json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
