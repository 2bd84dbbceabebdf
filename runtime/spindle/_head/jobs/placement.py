"""Where a job's entrypoint runs: on the head unless it asked for entrypoint resources.

A job with ``entrypoint_num_cpus`` / ``_num_gpus`` / ``_memory`` / ``_resources`` runs on a node that fits
them, chosen by the cluster's scheduler: the head runs ``python -m spindle._head.jobs.placed`` (an actor
holding those resources runs the entrypoint and relays its output) instead of the entrypoint itself. This
module builds that command from the job record; it does no I/O beyond reading the job's files.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

from spindle._head.jobs import runtime_env as _runtime_env
from spindle._packages import PackageError, PackageStore
from spindle.job_submission.models import JobDetails


def resources(d: JobDetails) -> dict[str, float]:
    """The resources the entrypoint asked for (empty: run it on the head, reserving nothing, as Ray)."""
    out = {k: float(v) for k, v in (d.entrypoint_resources or {}).items() if v}
    if d.entrypoint_num_cpus:
        out["CPU"] = float(d.entrypoint_num_cpus)
    if d.entrypoint_num_gpus:
        out["GPU"] = float(d.entrypoint_num_gpus)
    if d.entrypoint_memory:
        out["memory"] = float(d.entrypoint_memory)
    return out


def placed_file(job_dir: str) -> str:
    return os.path.join(job_dir, "placed.json")


def read_placed(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            where: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return None
    return where


def prepare(d: JobDetails, store: PackageStore, job_dir: str, cluster_env: dict[str, str], launcher: str,
            res: dict[str, float]) -> _runtime_env.Prepared:
    """The relay command for a placed job; RuntimeEnvSetupError when its runtime_env cannot travel."""
    env = d.runtime_env or {}
    if env.get("pip"):
        raise _runtime_env.RuntimeEnvSetupError(
            "runtime_env 'pip' is installed on the head, and this job's entrypoint resources may place it on "
            "another node: bake the packages into the image, or submit without entrypoint resources")
    try:
        working_dir = store.archive(env["working_dir"]) if env.get("working_dir") else None
        py_modules = [store.archive(uri) for uri in env.get("py_modules") or []]
    except PackageError as e:
        raise _runtime_env.RuntimeEnvSetupError(str(e)) from None
    env_vars = dict(env.get("env_vars") or {})
    spec = {
        "entrypoint": d.entrypoint, "resources": res, "launcher": launcher, "placed_file": placed_file(job_dir),
        "working_dir": working_dir, "py_modules": py_modules,
        "env": {**cluster_env, **env_vars, "PYTHONUNBUFFERED": "1", "SPINDLE_JOB_SUBMISSION_ID": d.submission_id or "",
                "SPINDLE_JOB_ENV_VARS": json.dumps(env_vars)},
    }
    command = f"{shlex.quote(sys.executable)} -m spindle._head.jobs.placed {shlex.quote(json.dumps(spec))}"
    return _runtime_env.Prepared(command=command)
