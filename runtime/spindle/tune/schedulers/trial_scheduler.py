"""The scheduler interface: pure state machines deciding what each trial does next.

A scheduler sees trial ids and result dicts only (never actors, clocks or the cluster), so its
decisions are deterministic and unit-tested by feeding results by hand. Decisions are Ray's strings
(CONTINUE / PAUSE / STOP), plus SAVE ("checkpoint this trial, then continue") and :class:`Exploit`
(PBT: restart this trial from another trial's checkpoint with a new config). The trial runner applies
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exploit:
    """Restart the trial from ``source``'s latest checkpoint with ``config``."""

    source: str
    config: dict[str, Any] = field(default_factory=dict)


Decision = "str | Exploit"


class TrialScheduler:
    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"
    SAVE = "SAVE"
    NOOP = "NOOP"

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self._metric, self._mode = metric, mode

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def _metric_op(self) -> float:
        return -1.0 if self._mode == "min" else 1.0

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def _require_metric(self) -> None:
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__} needs metric and mode ('min' or 'max'): pass them to the "
                             "scheduler or to TuneConfig/tune.run")

    def on_trial_add(self, trial_id: str, config: dict[str, Any]) -> None:
        pass

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> Any:
        return self.CONTINUE

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None) -> None:
        pass

    def on_trial_remove(self, trial_id: str) -> None:
        """The trial ended without completing (error, stopped by the user)."""

    def choose_trial_to_run(self, pending: list[str], paused: list[str]) -> str | None:
        """Which waiting trial gets the next free slot (None: none should start now)."""
        return pending[0] if pending else paused[0] if paused else None

    def trials_to_stop(self) -> list[str]:
        """Paused trials the scheduler has decided to stop (drained by the runner)."""
        return []

    def debug_string(self) -> str:
        return type(self).__name__


class FIFOScheduler(TrialScheduler):
    """Runs every trial to completion in the order it was added."""
