"""``JobSubmissionClient``: submit and manage jobs on a Spindle (or Ray) head over its Jobs REST API.

Method names, arguments and return types follow Ray's client, so code written for
``ray.job_submission`` runs unchanged. The address comes from the argument, else
SPINDLE_DASHBOARD_ADDRESS (or an http(s) SPINDLE_ADDRESS / RAY_ADDRESS), else the cluster this
process started with ``init()`` or this machine started with ``spindle start --head``. The cluster
token comes from SPINDLE_TOKEN (or that same local record) and is sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator
from typing import Any

import requests

from spindle._http_errors import error_message
from spindle.job_submission import packaging
from spindle.job_submission.models import JobDetails, JobStatus

DEFAULT_ADDRESS = "http://127.0.0.1:8265"


def _local_cluster() -> tuple[str, str]:
    """(job API address, token) of a cluster started by this process or recorded on this machine."""
    from spindle import _sessions
    from spindle._core import api

    local = api._state.get("local")
    if local is not None and local.dashboard_address:
        return local.dashboard_address, local.token
    try:
        rec = _sessions.read_trusted_json(_sessions.address_file())
    except (OSError, _sessions.UnsafeTempDirError):
        return "", ""
    if not isinstance(rec, dict):
        return "", ""
    return str(rec.get("dashboard_address", "")), str(rec.get("token", ""))


def resolve_address(address: str | None) -> tuple[str, str]:
    """(http address, token found alongside it) following the order in the module docstring."""
    token = ""
    if not address:
        address = os.environ.get("SPINDLE_DASHBOARD_ADDRESS", "")
    if not address:
        for var in ("SPINDLE_ADDRESS", "RAY_ADDRESS"):
            value = os.environ.get(var, "")
            if value.startswith(("http://", "https://")):
                address = value
                break
    if not address:
        address, token = _local_cluster()
    address = address or DEFAULT_ADDRESS
    if "://" not in address:
        address = "http://" + address
    return address.rstrip("/"), token


class JobSubmissionClient:
    def __init__(self, address: str | None = None, create_cluster_if_needed: bool = False,
                 cookies: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
                 headers: dict[str, Any] | None = None, verify: str | bool | None = True, *,
                 token: str | None = None, timeout: float = 30.0):
        self._address, found_token = resolve_address(address)
        self._cookies = cookies
        self._default_metadata = dict(metadata or {})
        self._headers = dict(headers or {})
        self._verify = verify
        self._timeout = timeout
        token = token or os.environ.get("SPINDLE_TOKEN") or found_token
        if token and not any(k.lower() == "authorization" for k in self._headers):
            self._headers["Authorization"] = f"Bearer {token}"
        self._session = requests.Session()
        version = self._request("GET", "/api/version")
        if version.status_code == 404:
            raise RuntimeError(f"{self._address} has no Jobs API (GET /api/version returned 404): is it a Spindle "
                               "head's job API port (8265 by default)?")
        self._check(version)

    # ------------------------------------------------------------------ plumbing
    def get_address(self) -> str:
        return self._address

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, self._address + path, headers=self._headers, cookies=self._cookies,
                                         verify=self._verify, timeout=self._timeout, **kwargs)
        except requests.ConnectionError:
            raise ConnectionError(f"Failed to connect to the Spindle job API at {self._address}: is the head "
                                  "running, and is this its job API address (port 8265 by default)?") from None

    def _check(self, r: requests.Response) -> Any:
        if r.status_code == 200:
            return r.json()
        raise RuntimeError(f"Request failed with status code {r.status_code}: {error_message(r)}")

    def get_version(self) -> str:
        return str(self._check(self._request("GET", "/api/version"))["version"])

    # ------------------------------------------------------------------ packages
    def _upload_if_needed(self, path: str, include_parent_dir: bool, excludes: list[str]) -> str:
        uri, data = packaging.pack_directory(path, include_parent_dir=include_parent_dir, excludes=excludes)
        protocol, name = packaging.uri_to_http_components(uri)
        r = self._request("GET", f"/api/packages/{protocol}/{name}")
        if r.status_code == 404:
            self._check(self._request("PUT", f"/api/packages/{protocol}/{name}", data=data))
        else:
            self._check(r)
        return uri

    def _upload_runtime_env(self, runtime_env: dict[str, Any]) -> dict[str, Any]:
        env = copy.deepcopy(runtime_env)
        excludes = list(env.get("excludes") or [])
        wd = env.get("working_dir")
        if isinstance(wd, str) and not packaging.is_remote_uri(wd):
            env["working_dir"] = self._upload_if_needed(wd, False, excludes)
        mods = env.get("py_modules")
        if isinstance(mods, list):
            env["py_modules"] = [m if not isinstance(m, str) or packaging.is_remote_uri(m)
                                 else self._upload_if_needed(m, True, excludes) for m in mods]
        return env

    # ------------------------------------------------------------------ jobs
    def submit_job(self, *, entrypoint: str, job_id: str | None = None, runtime_env: dict[str, Any] | None = None,
                   metadata: dict[str, str] | None = None, submission_id: str | None = None,
                   entrypoint_num_cpus: float | None = None, entrypoint_num_gpus: float | None = None,
                   entrypoint_memory: int | None = None,
                   entrypoint_resources: dict[str, float] | None = None) -> str:
        """Submit a job; returns its submission id. Local working_dir / py_modules directories are uploaded."""
        if job_id is not None and submission_id is not None:
            raise ValueError("pass submission_id only (job_id is its deprecated name)")
        body: dict[str, Any] = {
            "entrypoint": entrypoint, "submission_id": submission_id or job_id,
            "runtime_env": self._upload_runtime_env(runtime_env or {}),
            "metadata": {**self._default_metadata, **(metadata or {})},
        }
        for key, value in (("entrypoint_num_cpus", entrypoint_num_cpus), ("entrypoint_num_gpus", entrypoint_num_gpus),
                           ("entrypoint_memory", entrypoint_memory), ("entrypoint_resources", entrypoint_resources)):
            if value is not None:
                body[key] = value
        return str(self._check(self._request("POST", "/api/jobs/", json=body))["submission_id"])

    def stop_job(self, job_id: str) -> bool:
        return bool(self._check(self._request("POST", f"/api/jobs/{job_id}/stop"))["stopped"])

    def delete_job(self, job_id: str) -> bool:
        return bool(self._check(self._request("DELETE", f"/api/jobs/{job_id}"))["deleted"])

    def get_job_info(self, job_id: str) -> JobDetails:
        return JobDetails.from_json(self._check(self._request("GET", f"/api/jobs/{job_id}")))

    def list_jobs(self) -> list[JobDetails]:
        return [JobDetails.from_json(d) for d in self._check(self._request("GET", "/api/jobs/"))]

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        return str(self._check(self._request("GET", f"/api/jobs/{job_id}/logs"))["logs"])

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's log as it is written, ending when the job has ended (a websocket, as in Ray)."""
        import aiohttp

        ws_address = self._address.replace("http", "ws", 1) + f"/api/jobs/{job_id}/logs/tail"
        ssl: Any = self._verify is not False
        async with aiohttp.ClientSession(cookies=self._cookies, headers=self._headers) as session:
            try:
                ws = await session.ws_connect(ws_address, ssl=ssl, heartbeat=None)
            except aiohttp.WSServerHandshakeError as e:
                raise RuntimeError(f"Request failed with status code {e.status}: cannot tail the logs of job "
                                   f"{job_id} ({e.message})") from None
            except aiohttp.ClientConnectionError:
                raise ConnectionError(f"Failed to connect to the Spindle job API at {self._address}") from None
            async with ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        yield msg.data
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
