"""joblib on the cluster (``ray.util.joblib``): ``register_spindle()``, then
``with joblib.parallel_backend("spindle"): Parallel(n_jobs=-1)(...)``, as scikit-learn users do.

``register_ray()`` is the same call under Ray's name, so Ray programs run unchanged.
"""

from __future__ import annotations

from typing import Any


def register_spindle() -> None:
    """Register the ``"spindle"`` joblib backend (and ``"ray"``, for programs written for Ray)."""
    try:
        import joblib
    except ImportError as e:  # joblib is an optional dependency
        raise ImportError("spindle.util.joblib needs joblib: pip install joblib (or spindle[joblib])") from e
    from spindle.util.joblib._backend import SpindleBackend

    joblib.register_parallel_backend("spindle", SpindleBackend)
    joblib.register_parallel_backend("ray", SpindleBackend)


def register_ray(*args: Any, **kwargs: Any) -> None:
    """Ray's name for `register_spindle`."""
    register_spindle(*args, **kwargs)


__all__ = ["register_ray", "register_spindle"]
