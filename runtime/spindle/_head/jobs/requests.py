"""Checking a job submission (``POST /api/jobs/``) before anything runs: pure, so bad input loses nothing.

Field names and defaults follow Ray's JobSubmitRequest; newer Ray clients send a few fields Spindle
does not act on (listed in IGNORED), which are accepted so Ray's own client keeps working.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from spindle._head.jobs import runtime_env as _runtime_env

FIELDS = ("entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
          "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources")
IGNORED = ("entrypoint_label_selector",)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass
class SubmitRequest:
    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None

    def resources(self) -> dict[str, float]:
        out = dict(self.entrypoint_resources or {})
        if self.entrypoint_num_cpus:
            out["CPU"] = self.entrypoint_num_cpus
        if self.entrypoint_num_gpus:
            out["GPU"] = self.entrypoint_num_gpus
        if self.entrypoint_memory:
            out["memory"] = float(self.entrypoint_memory)
        return out


def new_submission_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "spindlesubmit_" + "".join(secrets.choice(alphabet) for _ in range(16))


def _number(body: dict[str, Any], key: str, integer: bool = False) -> Any:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (integer and not isinstance(v, int)):
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise ValueError(f"{key} must be {kind}, got {v!r}")
    return v


def parse_submit(body: Any) -> SubmitRequest:
    """The submission as the head will run it; ValueError naming the bad field otherwise."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object with at least 'entrypoint'")
    unknown = [k for k in body if k not in FIELDS and k not in IGNORED]
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; accepted: {', '.join(FIELDS)}")
    entrypoint = body.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise ValueError("'entrypoint' must be a non-empty shell command, e.g. \"python script.py\"")
    sid = body.get("submission_id") or body.get("job_id")  # job_id is Ray's deprecated name for it
    if sid is None:
        sid = new_submission_id()
    if not isinstance(sid, str) or not _ID.match(sid):
        raise ValueError(f"submission_id {sid!r} must be 1-128 letters, digits, '_', '-' or '.', starting with a "
                         "letter or digit")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("metadata must map strings to strings")
    res = body.get("entrypoint_resources")
    if res is not None and (not isinstance(res, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in res.items())):
        raise ValueError("entrypoint_resources must map resource names to non-negative numbers")
    if res and any(k in ("CPU", "GPU", "memory") for k in res):
        raise ValueError("entrypoint_resources must not name CPU, GPU or memory: use entrypoint_num_cpus, "
                         "entrypoint_num_gpus and entrypoint_memory")
    return SubmitRequest(
        entrypoint=entrypoint, submission_id=sid, runtime_env=_runtime_env.validate(body.get("runtime_env")),
        metadata=dict(metadata), entrypoint_num_cpus=_number(body, "entrypoint_num_cpus"),
        entrypoint_num_gpus=_number(body, "entrypoint_num_gpus"),
        entrypoint_memory=_number(body, "entrypoint_memory", integer=True),
        entrypoint_resources={k: float(v) for k, v in res.items()} if res else None)
