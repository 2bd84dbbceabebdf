"""runtime_env for tasks, actors and drivers' jobs: checked where it is given, in one place.

Pure. ``validate`` turns what a user wrote (``init(runtime_env=...)``, ``@remote(runtime_env=...)``,
``.options(runtime_env=...)``) into a plain dict or raises ValueError naming the field and the fix;
``merge`` applies a task's fields over its job's (field by field, as Ray does; env_vars are merged
key by key); ``worker_part`` is what needs a dedicated worker (packages, a working dir, pip) and
``key_of`` names it, so tasks with the same environment share workers.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Mapping
from typing import Any

SUPPORTED = ("env_vars", "working_dir", "py_modules", "pip", "excludes", "config")
UNSUPPORTED = ("conda", "container", "image_uri", "uv", "java_jars", "nsight", "mpi")
WORKER_FIELDS = ("working_dir", "py_modules", "pip")
WORKER_ENV_VAR = "SPINDLE_RUNTIME_ENV"  # in a dedicated worker: its resolved environment (JSON), set by the agent
JOB_ENV_VAR = "SPINDLE_JOB_RUNTIME_ENV"  # in a submitted job's entrypoint: the job's resolved environment


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def pip_packages(pip: Any, a_path: str = "is not supported") -> list[str]:
    """The requirement strings of a ``pip`` field (a list, or ``{"packages": [...]}``); ``a_path``: what the
    error for a requirements file path says of it (the job API: the client reads it)."""
    if isinstance(pip, dict):
        pip = pip.get("packages")
    if isinstance(pip, str):
        raise ValueError(f"runtime_env 'pip' as a requirements file path {a_path}: pass a list of "
                         "requirement strings, e.g. [\"requests==2.32.3\"]")
    if not _strings(pip):
        raise ValueError("runtime_env 'pip' must be a list of requirement strings, e.g. [\"requests==2.32.3\"]")
    return list(pip)


def check_fields(runtime_env: Mapping[str, Any]) -> None:
    """ValueError naming the fix for an unknown or unsupported field, or env_vars that are not strings
    (shared by tasks, actors and the job API)."""
    for key in runtime_env:
        if key in UNSUPPORTED:
            raise ValueError(f"runtime_env field {key!r} is not supported by Spindle: use 'pip', 'env_vars', "
                             "'working_dir' or 'py_modules', or build it into the cluster's image")
        if key not in SUPPORTED:
            raise ValueError(f"unknown runtime_env field {key!r}; supported: {', '.join(SUPPORTED)}")
    env_vars = runtime_env.get("env_vars")
    if env_vars is not None and (not isinstance(env_vars, Mapping)
                                 or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())):
        raise ValueError("runtime_env 'env_vars' must map strings to strings, e.g. {\"OMP_NUM_THREADS\": \"1\"}")


def validate(runtime_env: Any) -> dict[str, Any]:
    """A copy of ``runtime_env`` known to be applicable; ValueError naming the bad field otherwise.

    ``working_dir`` and ``py_modules`` may be local directories (the driver uploads them) or
    uploaded package URIs (``gcs://<name>.zip``)."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, Mapping):
        raise ValueError(f"runtime_env must be a dict, got {type(runtime_env).__name__}")
    check_fields(runtime_env)
    env = dict(runtime_env)
    wd = env.get("working_dir")
    if wd is not None and not (isinstance(wd, str) and wd.strip()):
        raise ValueError(f"runtime_env 'working_dir' must be a directory path or a package URI, got {wd!r}")
    mods = env.get("py_modules")
    if mods is not None and not (isinstance(mods, list) and all(
            (isinstance(m, str) and m.strip()) or isinstance(m, types.ModuleType) for m in mods)):
        raise ValueError("runtime_env 'py_modules' must be a list of directory paths, package URIs or modules")
    excludes = env.get("excludes")
    if excludes is not None and not _strings(excludes):
        raise ValueError("runtime_env 'excludes' must be a list of path patterns, e.g. [\"data/\", \"*.ckpt\"]")
    if env.get("pip") is not None:
        env["pip"] = pip_packages(env["pip"])
    if env.get("config") is not None and not isinstance(env["config"], Mapping):
        raise ValueError("runtime_env 'config' must be a dict")
    return env


def merge(job: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """A task's runtime_env over its job's: each field the task sets replaces the job's, except env_vars,
    which are merged (the task's win)."""
    out = {**job, **task}
    if job.get("env_vars") or task.get("env_vars"):
        out["env_vars"] = {**(job.get("env_vars") or {}), **(task.get("env_vars") or {})}
    return out


def worker_part(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that need a worker of their own (after the driver resolved directories to URIs)."""
    return {k: resolved[k] for k in WORKER_FIELDS if resolved.get(k)}


def key_of(part: Mapping[str, Any]) -> str:
    """A stable name of a worker environment ("" for the plain one)."""
    if not part:
        return ""
    text = json.dumps(part, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
