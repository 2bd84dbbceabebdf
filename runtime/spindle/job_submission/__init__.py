"""Job submission: ``JobSubmissionClient``, ``JobStatus``, ``JobInfo`` / ``JobDetails`` (as in ``ray.job_submission``)."""

from spindle.job_submission.client import JobSubmissionClient
from spindle.job_submission.models import DriverInfo, JobDetails, JobInfo, JobStatus, JobType

__all__ = ["DriverInfo", "JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient", "JobType"]
