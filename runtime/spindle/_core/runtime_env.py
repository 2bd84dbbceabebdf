"""The driver's half of runtime_env: local directories become uploaded packages, once.

A ``working_dir`` or ``py_modules`` directory is zipped and named by its content
(spindle.job_submission.packaging, the same packages the job client uploads), uploaded to the head
over gRPC unless the head already has it, and replaced by its ``gcs://`` URI. The result travels with
every lease and actor as a `RuntimeEnvSpec`; node agents fetch the packages from the head and start
workers dedicated to that environment (spindle._agent.runtime_env).
"""

from __future__ import annotations

import json
import os
import threading
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spindle import _runtime_env
from spindle._proto import pb
from spindle.job_submission.packaging import is_remote_uri, pack_directory

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

NONE = pb.RuntimeEnvSpec()
WORKER_ENV_VAR = _runtime_env.WORKER_ENV_VAR
JOB_ENV_VAR = _runtime_env.JOB_ENV_VAR


class Resolver:
    """Per driver/worker process: resolves runtime_envs to specs, caching packed dirs and uploads."""

    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.job_env: dict[str, Any] = {}  # the job's runtime_env, already resolved
        self._lock = threading.Lock()
        self._packed: dict[tuple[str, bool, tuple[str, ...]], str] = {}
        self._uploaded: set[str] = set()

    def set_job_env(self, runtime_env: Mapping[str, Any] | None) -> None:
        self.job_env = self.resolve_dict(_runtime_env.validate(runtime_env)) if runtime_env else {}

    def resolve_dict(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """``env`` with local directories replaced by uploaded package URIs."""
        out = dict(env)
        excludes = tuple(env.get("excludes") or ())
        if env.get("working_dir"):
            out["working_dir"] = self._package(env["working_dir"], False, excludes)
        if env.get("py_modules"):
            out["py_modules"] = [self._package(m, True, excludes) for m in env["py_modules"]]
        out.pop("excludes", None)
        return out

    def spec_for(self, task_env: Mapping[str, Any] | None) -> tuple[dict[str, Any], pb.RuntimeEnvSpec]:
        """(the merged env, the worker spec) of a task or actor whose options carry ``task_env``."""
        merged = _runtime_env.merge(self.job_env, self.resolve_dict(task_env) if task_env else {})
        part = _runtime_env.worker_part(merged)
        if not part:
            return merged, NONE
        return merged, pb.RuntimeEnvSpec(key=_runtime_env.key_of(part), json=json.dumps(part, sort_keys=True))

    def _package(self, path: Any, include_parent: bool, excludes: tuple[str, ...]) -> str:
        if isinstance(path, types.ModuleType):  # py_modules=[my_module], as Ray accepts
            files = getattr(path, "__path__", None)
            path = list(files)[0] if files else os.path.dirname(path.__file__ or "")
        path = str(path)
        if is_remote_uri(path):
            return path
        key = (os.path.abspath(os.path.expanduser(path)), include_parent, excludes)
        with self._lock:
            uri = self._packed.get(key)
        if uri is not None:
            return uri
        uri, data = pack_directory(path, include_parent_dir=include_parent, excludes=excludes)
        self._upload(uri, data)
        with self._lock:
            self._packed[key] = uri
        return uri

    def _upload(self, uri: str, data: bytes) -> None:
        if uri in self._uploaded:
            return
        head = self.cw.head()
        have = head.GetPackage(pb.PackageRequest(uri=uri, only_check=True), metadata=self.cw.md, timeout=30)
        if not have.exists:
            head.PutPackage(pb.PackageRequest(uri=uri, data=data), metadata=self.cw.md, timeout=300)
        self._uploaded.add(uri)


def resolver_of(cw: CoreWorker) -> Resolver:
    """The process's resolver (made on first use; a worker's default is the environment it runs in)."""
    resolver: Resolver | None = getattr(cw, "_runtime_env_resolver", None)
    if resolver is None:
        resolver = Resolver(cw)
        inherited = os.environ.get(WORKER_ENV_VAR)
        if inherited:  # nested tasks and actors inherit their worker's environment, as in Ray
            resolver.job_env = json.loads(inherited)
        cw._runtime_env_resolver = resolver  # type: ignore[attr-defined]
    return resolver
