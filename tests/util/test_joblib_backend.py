"""joblib's Parallel runs on the cluster through the "spindle" (and "ray") backend."""

from __future__ import annotations

import os

import joblib
import pytest

from spindle.util.joblib import register_ray, register_spindle

pytestmark = pytest.mark.usefixtures("cluster")


def square(x: int) -> int:
    return x * x


def boom(x: int) -> int:
    raise KeyError(f"no {x}")


def test_parallel_runs_every_call_in_pool_processes() -> None:
    register_spindle()
    with joblib.parallel_backend("spindle", n_jobs=-1):
        out = joblib.Parallel()(joblib.delayed(square)(i) for i in range(50))
        pids = set(joblib.Parallel(batch_size=1)(joblib.delayed(os.getpid)() for _ in range(20)))
    assert out == [i * i for i in range(50)]
    assert os.getpid() not in pids


def test_the_ray_name_works_for_ray_programs() -> None:
    register_ray()
    with joblib.parallel_backend("ray"):
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


def test_an_exception_in_a_call_reaches_the_caller_with_its_type() -> None:
    register_spindle()
    with joblib.parallel_backend("spindle", n_jobs=2), pytest.raises(KeyError, match="no 3"):
        joblib.Parallel()(joblib.delayed(boom)(i) for i in (3,))
