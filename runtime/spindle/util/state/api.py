"""The HTTP client behind ``spindle.util.state`` (and ``spindle list/summary/logs``).

The address resolves like the job SDK's (argument, SPINDLE_DASHBOARD_ADDRESS, an http SPINDLE_ADDRESS or
RAY_ADDRESS, else the cluster this process or this machine started); the token from SPINDLE_TOKEN or that
same record. Errors raise ``RuntimeError`` with the server's message; an unreachable head says so.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from typing import Any

import requests

from spindle._http_errors import error_message
from spindle.job_submission.client import resolve_address

DEFAULT_LIMIT = 100
DEFAULT_RPC_TIMEOUT = 30
PREDICATES = ("=", "!=")

Filter = tuple[str, str, Any]


class StateRow(dict):  # type: ignore[type-arg]
    """One row: a dict whose keys are also attributes (``row.state == row["state"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class StateApiClient:
    def __init__(self, address: str | None = None, token: str | None = None):
        self.address, found = resolve_address(address)
        token = token or os.environ.get("SPINDLE_TOKEN") or found
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = requests.Session()

    def _get(self, path: str, params: list[tuple[str, Any]], timeout: float, stream: bool = False) -> requests.Response:
        try:
            r = self.session.get(self.address + path, params=params, headers=self.headers, timeout=timeout,
                                 stream=stream)
        except requests.ConnectionError:
            raise ConnectionError(f"Failed to connect to the Spindle head at {self.address}: is the cluster running, "
                                  "and is this its dashboard address (port 8265 by default)?") from None
        except requests.Timeout:
            raise TimeoutError(f"the head at {self.address} did not answer {path} within {timeout} s") from None
        if r.status_code != 200:
            raise RuntimeError(f"{path} failed with status {r.status_code}: {error_message(r)}")
        return r

    def list_rows(self, kind: str, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
             timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False) -> list[StateRow]:
        params: list[tuple[str, Any]] = [("limit", limit), ("detail", "true" if detail else "false"),
                                         ("timeout", timeout)]
        for f in filters or []:
            if len(f) != 3 or f[1] not in PREDICATES:
                raise ValueError(f"bad filter {f!r}: give (key, '=' or '!=', value), e.g. ('state', '=', 'RUNNING')")
            key, pred, value = f
            params += [("filter_keys", key), ("filter_predicates", pred), ("filter_values", _text(value))]
        body = self._get(f"/api/v0/{kind}", params, timeout).json()
        return [StateRow(r) for r in body["data"]["result"]["result"]]

    def summary(self, kind: str, timeout: float = DEFAULT_RPC_TIMEOUT) -> dict[str, Any]:
        body = self._get(f"/api/v0/{kind}/summarize", [("timeout", timeout)], timeout).json()
        result: dict[str, Any] = body["data"]["result"]["result"]
        return result

    def logs(self, node_id: str | None, node_ip: str | None, glob_filter: str | None,
             timeout: float) -> dict[str, list[str]]:
        params = [(k, v) for k, v in (("node_id", node_id), ("node_ip", node_ip), ("glob", glob_filter)) if v]
        result: dict[str, list[str]] = self._get("/api/v0/logs", params, timeout).json()["data"]["result"]
        return result

    def log(self, params: list[tuple[str, Any]], follow: bool, timeout: float) -> Iterator[bytes]:
        path = "/api/v0/logs/stream" if follow else "/api/v0/logs/file"
        r = self._get(path, params, timeout, stream=True)
        try:
            yield from r.iter_content(chunk_size=None)
        finally:
            r.close()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _list(kind: str, address: str | None, filters: list[Filter] | None, limit: int, timeout: float,
          detail: bool) -> list[StateRow]:
    return StateApiClient(address).list_rows(kind, filters, limit, timeout, detail)


def list_tasks(address: str | None = None, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
               timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[StateRow]:
    return _list("tasks", address, filters, limit, timeout, detail)


def list_actors(address: str | None = None, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
                timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                _explain: bool = False) -> list[StateRow]:
    return _list("actors", address, filters, limit, timeout, detail)


def list_nodes(address: str | None = None, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
               timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[StateRow]:
    return _list("nodes", address, filters, limit, timeout, detail)


def list_workers(address: str | None = None, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[StateRow]:
    return _list("workers", address, filters, limit, timeout, detail)


def list_objects(address: str | None = None, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[StateRow]:
    return _list("objects", address, filters, limit, timeout, detail)


def list_jobs(address: str | None = None, filters: list[Filter] | None = None, limit: int = DEFAULT_LIMIT,
              timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
              _explain: bool = False) -> list[StateRow]:
    return _list("jobs", address, filters, limit, timeout, detail)


def _get_one(kind: str, key: str, id: str, address: str | None, timeout: float) -> StateRow | None:
    rows = _list(kind, address, [(key, "=", id)], 1, timeout, True)
    return rows[0] if rows else None


def get_task(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
             _explain: bool = False) -> StateRow | None:
    return _get_one("tasks", "task_id", id, address, timeout)


def get_actor(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
              _explain: bool = False) -> StateRow | None:
    return _get_one("actors", "actor_id", id, address, timeout)


def get_node(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
             _explain: bool = False) -> StateRow | None:
    return _get_one("nodes", "node_id", id, address, timeout)


def get_worker(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
               _explain: bool = False) -> StateRow | None:
    return _get_one("workers", "worker_id", id, address, timeout)


def get_job(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
            _explain: bool = False) -> StateRow | None:
    rows = [r for r in _list("jobs", address, None, 10_000, timeout, True) if id in (r.get("job_id"),
                                                                                      r.get("submission_id"))]
    return rows[0] if rows else None


def get_objects(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                _explain: bool = False) -> list[StateRow]:
    return _list("objects", address, [("object_id", "=", id)], 10_000, timeout, True)


def list_placement_groups(address: str | None = None, filters: list[Filter] | None = None,
                          limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                          raise_on_missing_output: bool = True, _explain: bool = False) -> list[StateRow]:
    return _list("placement_groups", address, filters, limit, timeout, detail)


def get_placement_group(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                        _explain: bool = False) -> StateRow | None:
    return _get_one("placement_groups", "placement_group_id", id, address, timeout)


def summarize_objects(address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                      raise_on_missing_output: bool = True, _explain: bool = False) -> dict[str, Any]:
    return StateApiClient(address).summary("objects", timeout)


def summarize_tasks(address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                    raise_on_missing_output: bool = True, _explain: bool = False) -> dict[str, Any]:
    return StateApiClient(address).summary("tasks", timeout)


def summarize_actors(address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                     raise_on_missing_output: bool = True, _explain: bool = False) -> dict[str, Any]:
    return StateApiClient(address).summary("actors", timeout)


def list_logs(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
              glob_filter: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT) -> dict[str, list[str]]:
    if not node_id and not node_ip:
        raise ValueError("list_logs needs node_id or node_ip (list_nodes() shows them)")
    return StateApiClient(address).logs(node_id, node_ip, glob_filter, timeout)


def get_log(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
            filename: str | None = None, actor_id: str | None = None, task_id: str | None = None,
            pid: int | None = None, follow: bool = False, tail: int = 1000, timeout: float = DEFAULT_RPC_TIMEOUT,
            suffix: str = "out", encoding: str | None = "utf-8", errors: str | None = "strict",
            submission_id: str | None = None, attempt_number: int = 0, _interval: float | None = None
            ) -> Iterator[str]:
    """The log's text in chunks (following it for ``follow``): by file name on a node, or by task, actor or pid."""
    if submission_id:
        raise ValueError("a submitted job's driver log is read with JobSubmissionClient.get_job_logs(submission_id)")
    given = {"node_id": node_id, "node_ip": node_ip, "filename": filename, "actor_id": actor_id,
             "task_id": task_id, "pid": pid}
    params: list[tuple[str, Any]] = [(k, v) for k, v in given.items() if v]
    params += [("lines", tail), ("suffix", suffix), ("timeout", timeout)]
    decoder = codecs.getincrementaldecoder(encoding or "utf-8")(errors or "strict")  # chunks may split a character
    for chunk in StateApiClient(address).log(params, follow, timeout):
        text = decoder.decode(chunk)
        if text:
            yield text
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest
