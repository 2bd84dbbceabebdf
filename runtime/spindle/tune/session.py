"""The calls a function trainable makes from inside its trial: ``tune.report`` and
``tune.get_checkpoint`` (and ``get_context``). They talk to the trial's runner in the same worker
process; outside a trial they fail with an explanation instead of silently doing nothing."""

from __future__ import annotations

from typing import Any

from spindle.tune.checkpoint import Checkpoint

_session: Any = None  # the _FunctionRunner of the trial running in this process


def _set_session(session: Any) -> None:
    global _session
    _session = session


def _require() -> Any:
    if _session is None:
        raise RuntimeError("tune.report()/tune.get_checkpoint() only work inside a trial started by "
                           "tune.run() or Tuner.fit(); call your trainable through them")
    return _session


def report(metrics: dict[str, Any] | None = None, *, checkpoint: Checkpoint | None = None, **kwargs: Any) -> None:
    """Report one iteration's metrics: ``tune.report({"score": s})`` or ``tune.report(score=s)``.

    With ``checkpoint``, its directory is copied into the trial's results (so it may be deleted or
    reused right after). Blocks until the runner asks for the next iteration, so a trial the scheduler
    stops runs no further."""
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"tune.report takes a dict of metrics or keyword metrics, got {type(metrics).__name__}")
    merged = {**(metrics or {}), **kwargs}
    _require().report(merged, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint this trial resumes from (after a failure, a pause or a PBT exploit), else None."""
    return _require().checkpoint


class TuneContext:
    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def get_trial_id(self) -> str:
        return str(self._info["trial_id"])

    def get_trial_name(self) -> str:
        return str(self._info["trial_name"])

    def get_trial_dir(self) -> str:
        return str(self._info["trial_dir"])

    def get_experiment_name(self) -> str:
        return str(self._info["experiment_name"])


def get_context() -> TuneContext:
    return TuneContext(_require().info)
