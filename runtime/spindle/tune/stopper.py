"""Stop criteria: a dict of thresholds (``{"training_iteration": 10, "score": 0.9}``: stop when any is
reached), a function ``(trial_id, result) -> bool`` or a :class:`Stopper` (which may also end the whole
run through ``stop_all``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Stopper:
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return False


def make_stopper(stop: Any) -> tuple[Callable[[str, dict[str, Any]], bool] | None, Callable[[], bool] | None]:
    if stop is None:
        return None, None
    if isinstance(stop, Stopper):
        return stop, stop.stop_all
    if isinstance(stop, dict):
        criteria = dict(stop)

        def by_dict(trial_id: str, result: dict[str, Any]) -> bool:
            return any(isinstance(result.get(k), (int, float)) and result[k] >= v for k, v in criteria.items())
        return by_dict, None
    if callable(stop):
        return stop, None
    raise TypeError(f"stop must be a dict, a function (trial_id, result) -> bool or a Stopper, got {stop!r}")
