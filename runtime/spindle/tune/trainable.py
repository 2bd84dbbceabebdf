"""Class trainables (``tune.Trainable``) and the wrappers that attach resources or large
parameters to a trainable (``tune.with_resources``, ``tune.with_parameters``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class Trainable:
    """Subclass and implement ``setup(config)``, ``step() -> dict`` and optionally
    ``save_checkpoint(dir) -> dict | None`` / ``load_checkpoint(dict | dir)`` and ``cleanup()``."""

    def __init__(self, config: dict[str, Any] | None = None, trial_info: dict[str, Any] | None = None) -> None:
        self.config = config or {}
        self._info = trial_info or {}
        self._iteration = int(self._info.get("iteration", 0))
        self.setup(self.config)

    @property
    def iteration(self) -> int:
        return self._iteration

    training_iteration = iteration

    @property
    def trial_id(self) -> str:
        return str(self._info.get("trial_id", ""))

    @property
    def trial_name(self) -> str:
        return str(self._info.get("trial_name", ""))

    @property
    def logdir(self) -> str:
        return str(self._info.get("trial_dir", ""))

    def setup(self, config: dict[str, Any]) -> None:
        pass

    def step(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement step() returning a dict of metrics")

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        return None

    def load_checkpoint(self, checkpoint: Any) -> None:
        pass

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        return False

    def cleanup(self) -> None:
        pass

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> dict[str, float] | None:
        return None


def with_resources(trainable: Any, resources: dict[str, float] | Callable[[dict[str, Any]], dict[str, float]]) -> Any:
    """The trainable with its trials' resources attached (``{"cpu": 2, "gpu": 0, "custom": 1}``)."""
    if isinstance(trainable, type):
        wrapped: Any = type(trainable.__name__, (trainable,), {"_tune_resources": resources})
    else:
        @functools.wraps(trainable)
        def wrapped(config: dict[str, Any]) -> Any:
            return trainable(config)
        wrapped._tune_resources = resources  # type: ignore[attr-defined]
    return wrapped


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """Pass large objects to every trial through the object store (put once, shared by trials)."""
    import spindle

    refs = {k: spindle.put(v) for k, v in kwargs.items()}
    if isinstance(trainable, type):
        def setup(self: Any, config: dict[str, Any]) -> None:
            base: Any = trainable
            base.setup(self, config, **{k: spindle.get(r) for k, r in refs.items()})
        return type(trainable.__name__, (trainable,), {"setup": setup})

    @functools.wraps(trainable)
    def inner(config: dict[str, Any]) -> Any:
        return trainable(config, **{k: spindle.get(r) for k, r in refs.items()})
    return inner
