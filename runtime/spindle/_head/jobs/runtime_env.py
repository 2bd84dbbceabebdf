"""A job's runtime_env: checked when the job is submitted, applied when its entrypoint starts.

``validate`` is pure (a bad runtime_env is refused at submit with a 400 naming the field);
``prepare`` does the work on the node: unpack working_dir and py_modules, install ``pip``
packages into a per-job directory, and return the entrypoint's environment and working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from spindle import _runtime_env as shared
from spindle._packages import PackageStore, PipInstallError, pip_install

PIP_TIMEOUT_S = float(os.environ.get("SPINDLE_PIP_TIMEOUT_S", "600"))


class RuntimeEnvSetupError(RuntimeError):
    """Applying a valid runtime_env failed on the node (pip unreachable, package missing)."""


@dataclass
class Prepared:
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    python_path: list[str] = field(default_factory=list)
    command: str | None = None  # what the head runs instead of the entrypoint (a placed job's relay)


def _pip_packages(pip: Any) -> list[str]:
    return shared.pip_packages(pip, a_path="is read by the client")


def validate(runtime_env: Any) -> dict[str, Any]:
    """The runtime_env as the head will apply it; ValueError with the fix for anything it cannot apply."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise ValueError(f"runtime_env must be a JSON object, got {type(runtime_env).__name__}")
    shared.check_fields(runtime_env)
    wd = runtime_env.get("working_dir")
    if wd is not None and (not isinstance(wd, str) or "://" not in wd):
        raise ValueError(f"runtime_env 'working_dir' {wd!r} is a local path on the submitting machine: submit with "
                         "the job client or CLI (they upload it), or pass an uploaded package URI gcs://<name>.zip")
    mods = runtime_env.get("py_modules")
    if mods is not None and (not isinstance(mods, list) or not all(isinstance(m, str) and "://" in m for m in mods)):
        raise ValueError("runtime_env 'py_modules' must be a list of uploaded package URIs; submit local module "
                         "directories with the job client or CLI, which uploads them")
    if "pip" in runtime_env:
        _pip_packages(runtime_env["pip"])
    return dict(runtime_env)


def prepare(runtime_env: dict[str, Any], store: PackageStore, job_dir: str) -> Prepared:
    """Apply a validated runtime_env for one job; raises RuntimeEnvSetupError naming what failed."""
    out = Prepared()
    out.env.update(runtime_env.get("env_vars") or {})
    try:
        if runtime_env.get("working_dir"):
            out.cwd = store.unpack(runtime_env["working_dir"])
            out.python_path.append(out.cwd)
        for uri in runtime_env.get("py_modules") or []:
            out.python_path.append(store.unpack(uri))
    except ValueError as e:
        raise RuntimeEnvSetupError(str(e)) from None
    if runtime_env.get("pip"):
        target = os.path.join(job_dir, "pip")
        out.python_path.insert(0, _pip_install(_pip_packages(runtime_env["pip"]), target, job_dir))
    return out


def _pip_install(packages: list[str], target: str, job_dir: str) -> str:
    try:
        return pip_install(packages, target, os.path.join(job_dir, "pip.log"), PIP_TIMEOUT_S)
    except PipInstallError as e:
        raise RuntimeEnvSetupError(str(e)) from None
