"""Which accelerators the running task or actor may use (``get_gpu_ids``, ``get_accelerator_ids``).

The node agent gives each lease and actor its own device ids for the accelerator resources it holds
(``spindle._accelerators``); the worker exports them in the variables the device runtimes read
(``CUDA_VISIBLE_DEVICES``, ``NEURON_RT_VISIBLE_CORES``, ...) while the task runs, or for the actor's
life, as Ray's raylet does. A driver, or a task holding none of a resource, sees no ids for it.
"""

from __future__ import annotations

import os
from typing import Any

from spindle import _accelerators
from spindle._core.context import maybe_core


def _held() -> dict[str, float]:
    cw = maybe_core()
    if cw is None or cw.executor is None:
        return {}
    return _accelerators.held(cw.executor.assigned_resources())


def accelerator_ids() -> dict[str, list[str]]:
    """Ray's shape: every accelerator resource name, with the ids this task or actor holds (as strings)."""
    held = _held()
    return {name: _accelerators.ids_from_env(os.environ, name) if name in held else []
            for name in _accelerators.ENV_VARS}


def gpu_ids() -> list[Any]:
    """Ray's ``get_gpu_ids()``: ints when the ids are indices, else their names (UUIDs)."""
    ids = accelerator_ids()["GPU"]
    out: list[int] = []
    for d in ids:
        try:
            out.append(int(d))
        except ValueError:
            return ids
    return out
