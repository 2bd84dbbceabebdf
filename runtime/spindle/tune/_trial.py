"""A trial's record on the driver: config, status, results so far, checkpoint, failures, actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spindle.tune.checkpoint import Checkpoint

PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"


@dataclass(eq=False)
class Trial:
    trial_id: str
    index: int
    trainable_name: str
    config: dict[str, Any]
    resources: dict[str, float]
    path: str = ""
    status: str = PENDING
    last_result: dict[str, Any] = field(default_factory=dict)
    metric_history: list[dict[str, Any]] = field(default_factory=list)
    iteration: int = 0
    iterations_since_restore: int = 0
    time_total_s: float = 0.0
    checkpoint: Checkpoint | None = None
    checkpoint_iteration: int = 0
    checkpoint_time_s: float = 0.0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    num_failures: int = 0
    error_msg: str | None = None
    actor: Any = None
    restore_from: tuple[bytes, int, float] | None = None  # archive, iteration, time at the checkpoint

    def __str__(self) -> str:
        return f"{self.trainable_name}_{self.trial_id}"

    @property
    def local_path(self) -> str:
        return self.path

    @property
    def error_file(self) -> str | None:
        return f"{self.path}/error.txt" if self.error_msg else None

    def is_finished(self) -> bool:
        return self.status in (TERMINATED, ERROR)
