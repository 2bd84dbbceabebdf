"""HTTPMode's I/O: the operator submits, reads and stops a SpindleJob's attempt on the head's job API itself.

It goes through the runtime's public client, ``spindle.job_submission.JobSubmissionClient`` (the layout rule:
the operator uses the runtime only through its public client API), with the cluster token read from the
cluster's Secret and the head address of ``settings.autoscaler.head_url`` (tests point it at a head process
on the host). Every failure becomes :class:`JobApiError` with the reason, which the pure reconcile turns into
a status message, so an unreachable head never hangs or crashes a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._builders import token_secret_name
from ._head_api import head_url
from ._settings import OperatorSettings


class JobApiError(Exception):
    """The head's job API could not be asked (no token yet, unreachable, refused)."""


class JobApi:
    def __init__(self, settings: OperatorSettings, read_token: Callable[[str, str], str | None]) -> None:
        self.settings = settings
        self._read_token = read_token

    def _client(self, namespace: str, cluster: str) -> Any:
        from spindle.job_submission import JobSubmissionClient

        token = self._read_token(namespace, token_secret_name(cluster))
        if not token:
            raise JobApiError(f"the token Secret {token_secret_name(cluster)} has no token yet")
        url = head_url(self.settings, namespace, cluster)
        try:
            return JobSubmissionClient(url, token=token, timeout=self.settings.autoscaler.request_timeout_seconds)
        except (ConnectionError, RuntimeError) as exc:
            raise JobApiError(str(exc)) from exc

    def get(self, namespace: str, cluster: str, submission_id: str) -> dict[str, Any] | None:
        """The head's record of ``submission_id`` as JSON, None when the head does not know it (404)."""
        client = self._client(namespace, cluster)
        try:
            info = client.get_job_info(submission_id)
        except RuntimeError as exc:
            if "status code 404" in str(exc):
                return None
            raise JobApiError(str(exc)) from exc
        except ConnectionError as exc:
            raise JobApiError(str(exc)) from exc
        record: dict[str, Any] = info.to_json()
        return record

    def submit(self, namespace: str, cluster: str, body: Mapping[str, Any]) -> None:
        client = self._client(namespace, cluster)
        kwargs = {k: v for k, v in body.items() if k != "runtime_env"}
        try:
            client.submit_job(runtime_env=dict(body.get("runtime_env") or {}), **kwargs)
        except RuntimeError as exc:
            if "already exists" in str(exc):
                return  # submitted by an earlier pass whose status write was lost
            raise JobApiError(str(exc)) from exc
        except (ConnectionError, ValueError) as exc:
            raise JobApiError(str(exc)) from exc

    def stop(self, namespace: str, cluster: str, submission_id: str) -> None:
        client = self._client(namespace, cluster)
        try:
            client.stop_job(submission_id)
        except (RuntimeError, ConnectionError) as exc:
            raise JobApiError(str(exc)) from exc
