"""The job records the Jobs API speaks: ``JobStatus``, ``JobInfo`` and ``JobDetails``, as in Ray.

They live in the public package because both sides use them: the head builds the JSON it returns
from ``JobDetails.to_json()``, and the SDK turns that JSON back into ``JobDetails`` with the same
field names Ray's client uses (so Ray's own ``JobSubmissionClient`` parses a Spindle head's answers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    """The states of a submitted job; the last three are terminal."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobType(str, Enum):
    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"


@dataclass
class DriverInfo:
    id: str
    node_ip_address: str
    pid: str


@dataclass
class JobDetails:
    """One job as the REST API returns it (Ray's ``JobDetails``; times are milliseconds since the epoch)."""

    type: JobType = JobType.SUBMISSION
    job_id: str | None = None
    submission_id: str | None = None
    driver_info: DriverInfo | None = None
    status: JobStatus = JobStatus.PENDING
    entrypoint: str = ""
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] | None = None
    runtime_env: dict[str, Any] | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["type"] = self.type.value
        out["status"] = self.status.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobDetails:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}  # newer servers may add fields
        kwargs["type"] = JobType(kwargs.get("type") or "SUBMISSION")
        kwargs["status"] = JobStatus(kwargs.get("status") or "PENDING")
        if kwargs.get("driver_info"):
            kwargs["driver_info"] = DriverInfo(**{k: str(v) for k, v in kwargs["driver_info"].items()
                                                  if k in ("id", "node_ip_address", "pid")})
        return cls(**kwargs)


JobInfo = JobDetails
"""Ray exposes both names; the REST API returns the richer ``JobDetails`` form."""
