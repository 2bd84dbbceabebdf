"""Accelerator ids: which GPU (or NeuronCore, TPU chip, ...) indices a task or actor may use, as Ray assigns them.

A node's accelerator resources are whole devices numbered 0..N-1 (or the ids in the agent's own visible-devices
variable, when it was started with one, as on a GPU pod). The agent gives each lease and each actor its own ids
for the whole units it holds (a fractional request shares one id), frees them when the lease or actor ends, and
the worker exports them in the variable the device's runtime reads (``CUDA_VISIBLE_DEVICES`` for GPUs,
``NEURON_RT_VISIBLE_CORES`` for ``neuron_cores``, ...), which is also what ``get_accelerator_ids()`` reports.
Pure bookkeeping: the agent holds one ``IdPool``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

# Ray's accelerator resource names and the variable each device runtime reads
ENV_VARS: dict[str, str] = {
    "GPU": "CUDA_VISIBLE_DEVICES",
    "neuron_cores": "NEURON_RT_VISIBLE_CORES",
    "TPU": "TPU_VISIBLE_CHIPS",
    "HPU": "HABANA_VISIBLE_MODULES",
    "NPU": "ASCEND_RT_VISIBLE_DEVICES",
    "RBLN": "RBLN_RT_VISIBLE_DEVICES",
    "FURIOSA": "FURIOSA_DEVICES",
    "MBLT": "QBRUNTIME_VISIBLE_DEVICES",
    "TTNPU": "TENSTORRENT_VISIBLE_DEVICES",
}


def held(resources: Mapping[str, float]) -> dict[str, float]:
    """The accelerator resources among ``resources`` (with a positive amount)."""
    return {k: float(v) for k, v in resources.items() if k in ENV_VARS and v > 0}


def env_for(ids: Mapping[str, list[str]]) -> dict[str, str]:
    """The visible-devices variables for ``ids`` (resource name -> ids)."""
    return {ENV_VARS[k]: ",".join(v) for k, v in ids.items() if k in ENV_VARS}


def ids_from_env(env: Mapping[str, str], name: str) -> list[str]:
    text = env.get(ENV_VARS[name], "")
    return [d.strip() for d in text.split(",") if d.strip()]


class IdPool:
    """The node's accelerator ids and who holds which (keyed by lease id or actor id)."""

    def __init__(self, totals: Mapping[str, float], env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self.ids: dict[str, list[str]] = {}
        for name, total in held(totals).items():
            n = int(total)
            visible = ids_from_env(env, name)
            self.ids[name] = visible[:n] if len(visible) >= n > 0 else [str(i) for i in range(n)]
        self.taken: dict[bytes, dict[str, list[str]]] = {}
        self.lock = threading.Lock()

    def assign(self, key: bytes, need: Mapping[str, float]) -> dict[str, list[str]]:
        """Ids for ``need``'s accelerators: whole units get ids nobody else holds; a fraction shares one."""
        out: dict[str, list[str]] = {}
        with self.lock:
            for name, amount in held(need).items():
                pool = self.ids.get(name, [])
                if not pool:
                    continue
                busy = {i for got in self.taken.values() for i in got.get(name, [])}
                free = [i for i in pool if i not in busy]
                if amount >= 1:
                    out[name] = free[: int(amount)]
                else:
                    out[name] = [free[0] if free else pool[0]]
            if out:
                self.taken[key] = out
        return out

    def release(self, key: bytes) -> None:
        with self.lock:
            self.taken.pop(key, None)
