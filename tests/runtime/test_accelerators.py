"""Accelerator ids as Ray assigns them: each task or actor holding GPUs (or NeuronCores, ...) gets its own device
ids, exported in the variable the device runtime reads, and ``get_gpu_ids``/``get_accelerator_ids`` report them
(a real embedded cluster declaring 2 GPUs and 2 NeuronCores; no device is touched, only ids are handed out)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spindle


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=4, num_gpus=2, resources={"neuron_cores": 2})
    try:
        yield
    finally:
        spindle.shutdown()


def _seen() -> dict[str, Any]:
    return {"gpus": spindle.get_gpu_ids(), "acc": spindle.get_runtime_context().get_accelerator_ids(),
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "neuron": os.environ.get("NEURON_RT_VISIBLE_CORES"),
            "resource_ids": spindle.get_runtime_context().get_resource_ids()}


@spindle.remote(num_gpus=1)
def one_gpu_meeting(folder: str, me: str, other: str) -> dict[str, Any]:
    """Holds its GPU until the other task holds one too (so both run at once), then reports its ids."""
    Path(folder, me).touch()
    while not Path(folder, other).exists():
        time.sleep(0.05)
    return _seen()


def test_a_task_with_one_gpu_sees_its_own_id_in_cuda_visible_devices() -> None:
    @spindle.remote(num_gpus=1)
    def probe() -> dict[str, Any]:
        return _seen()

    got = spindle.get(probe.remote(), timeout=60)
    assert len(got["gpus"]) == 1 and got["gpus"][0] in (0, 1)
    assert got["cuda"] == str(got["gpus"][0])
    assert got["acc"]["GPU"] == [str(got["gpus"][0])]
    assert got["acc"]["neuron_cores"] == [] and got["neuron"] is None
    assert got["resource_ids"] == {"GPU": [(got["gpus"][0], 1.0)]}


def test_two_tasks_holding_a_gpu_at_once_get_different_ids(tmp_path: Path) -> None:
    a = one_gpu_meeting.remote(str(tmp_path), "a", "b")
    b = one_gpu_meeting.remote(str(tmp_path), "b", "a")
    got = spindle.get([a, b], timeout=60)
    assert sorted(g["gpus"][0] for g in got) == [0, 1]


def test_neuron_cores_are_assigned_like_gpus_in_neuron_rt_visible_cores() -> None:
    @spindle.remote(num_cpus=0, resources={"neuron_cores": 2})
    def neuron() -> dict[str, Any]:
        return _seen()

    got = spindle.get(neuron.remote(), timeout=60)
    assert got["acc"]["neuron_cores"] == ["0", "1"]
    assert got["neuron"] == "0,1"
    assert got["gpus"] == [] and got["acc"]["GPU"] == []
    assert got["resource_ids"] == {"neuron_cores": [(0, 1.0), (1, 1.0)]}


def test_an_actor_keeps_its_gpus_for_its_life_and_frees_them_when_it_ends() -> None:
    @spindle.remote(num_gpus=2)
    class Trainer:
        def seen(self) -> dict[str, Any]:
            return _seen()

    t = Trainer.remote()
    first = spindle.get(t.seen.remote(), timeout=60)
    assert sorted(first["gpus"]) == [0, 1] and first["cuda"] in ("0,1", "1,0")
    assert spindle.get(t.seen.remote(), timeout=60)["gpus"] == first["gpus"]
    spindle.kill(t)
    t2 = Trainer.remote()  # placed only once the first one's GPUs are back: it gets the same two ids
    assert sorted(spindle.get(t2.seen.remote(), timeout=60)["gpus"]) == [0, 1]
    spindle.kill(t2)


def test_the_driver_and_tasks_without_accelerators_see_none() -> None:
    @spindle.remote
    def plain() -> dict[str, Any]:
        return _seen()

    assert spindle.get_gpu_ids() == []
    got = spindle.get(plain.remote(), timeout=60)
    assert got["gpus"] == [] and all(v == [] for v in got["acc"].values())
