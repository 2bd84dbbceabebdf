"""Job submission: ``JobSubmissionClient``, ``JobStatus``, ``JobInfo`` / ``JobDetails`` (as in ``ray.job_submission``).

The client (and with it ``requests``, ~9 MiB per process) loads on first use: every driver imports
``packaging`` from here for ``runtime_env``, and the head imports ``models``; neither needs an HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spindle.job_submission.models import DriverInfo, JobDetails, JobInfo, JobStatus, JobType

if TYPE_CHECKING:
    from spindle.job_submission.client import JobSubmissionClient

__all__ = ["DriverInfo", "JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient", "JobType"]


def __getattr__(name: str) -> Any:
    if name == "JobSubmissionClient":
        from spindle.job_submission.client import JobSubmissionClient

        return JobSubmissionClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
