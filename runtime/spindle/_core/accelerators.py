"""Which accelerators the running task or actor may use (``get_gpu_ids``, ``get_accelerator_ids``).

The node agent hands a worker the GPU indices of its lease in ``CUDA_VISIBLE_DEVICES`` (as Ray's
raylet does); a task holding ``num_gpus=N`` sees those ids. A driver, or a task without GPUs,
sees none.
"""

from __future__ import annotations

import os
from typing import Any

from spindle._core.context import maybe_core


def _held_gpus() -> float:
    cw = maybe_core()
    if cw is None or cw.executor is None:
        return 0.0
    return float(cw.executor.assigned_resources().get("GPU", 0.0))


def _visible() -> list[str]:
    text = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [d.strip() for d in text.split(",") if d.strip()]


def gpu_ids() -> list[Any]:
    """Ray's ``get_gpu_ids()``: ints when the visible devices are indices, else their names."""
    held = _held_gpus()
    if held <= 0:
        return []
    ids = _visible()[: max(1, int(held))]
    out: list[int] = []
    for d in ids:
        try:
            out.append(int(d))
        except ValueError:
            return ids  # UUIDs, as Ray returns them
    return out


def accelerator_ids() -> dict[str, list[str]]:
    return {"GPU": [str(i) for i in gpu_ids()]}
