"""The node agent's half of runtime_env: build a worker environment once per key, then start workers in it.

A `RuntimeEnvSpec` names packages (fetched from the head, kept in this node's package store, unpacked
once) and pip requirements (installed once per requirement set into a directory on the path, with the
node's own interpreter, so Spindle itself stays importable). Workers for that key start with the
packages first on ``PYTHONPATH``, in the ``working_dir`` if there is one, and with the resolved env in
``SPINDLE_RUNTIME_ENV`` so the tasks they submit inherit it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from spindle import _runtime_env
from spindle._packages import PackageError, PackageStore, PipInstallError, pip_install
from spindle._proto import pb
from spindle.exceptions import RuntimeEnvSetupError

PIP_TIMEOUT_S = float(os.environ.get("SPINDLE_PIP_TIMEOUT_S", "600"))


@dataclass(frozen=True)
class WorkerEnv:
    """How to start a worker dedicated to one runtime env."""

    key: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


class RuntimeEnvs:
    def __init__(self, root: str, fetch: Callable[[str], bytes | None]):
        """``fetch(uri)`` returns a package's bytes from the head, or None when the head lacks it."""
        self.root = root
        self.fetch = fetch
        self.store = PackageStore(os.path.join(root, "packages"))
        self._lock = threading.Lock()
        self._ready: dict[str, WorkerEnv] = {}
        self._building: dict[str, threading.Lock] = {}

    def prepare(self, spec: pb.RuntimeEnvSpec) -> WorkerEnv:
        """The worker env for ``spec`` (built on first use); RuntimeEnvSetupError naming what failed."""
        with self._lock:
            ready = self._ready.get(spec.key)
            if ready is not None:
                return ready
            building = self._building.setdefault(spec.key, threading.Lock())
        with building:  # one build per key at a time; a failed one is tried again by the next request
            with self._lock:
                if spec.key in self._ready:
                    return self._ready[spec.key]
            wenv = self._build(spec)
            with self._lock:
                self._ready[spec.key] = wenv
            return wenv

    def _unpack(self, uri: str) -> str:
        protocol, _, name = uri.partition("://")
        if not self.store.exists(protocol, name):
            data = self.fetch(uri)
            if data is None:
                raise RuntimeEnvSetupError(f"package {uri} is not on the head: it was uploaded to another cluster or "
                                           "the head restarted without storage; pass the local directory again")
            self.store.put(protocol, name, data)
        return self.store.unpack(uri)

    def _build(self, spec: pb.RuntimeEnvSpec) -> WorkerEnv:
        env = json.loads(spec.json)
        path: list[str] = []
        cwd = None
        try:
            if env.get("working_dir"):
                cwd = self._unpack(env["working_dir"])
                path.append(cwd)
            path += [self._unpack(uri) for uri in env.get("py_modules") or []]
        except PackageError as e:
            raise RuntimeEnvSetupError(str(e)) from None
        if env.get("pip"):
            packages = _runtime_env.pip_packages(env["pip"])
            digest = hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()[:24]
            target = os.path.join(self.root, "pip", digest)
            if not os.path.exists(os.path.join(target, ".complete")):
                os.makedirs(target, exist_ok=True)
                try:
                    pip_install(packages, target, os.path.join(self.root, f"pip-{digest}.log"), PIP_TIMEOUT_S)
                except PipInstallError as e:
                    raise RuntimeEnvSetupError(f"runtime_env pip: {e}") from None
                open(os.path.join(target, ".complete"), "w").close()
            path.insert(0, target)
        extra = os.environ.get("PYTHONPATH")
        return WorkerEnv(spec.key, {"PYTHONPATH": os.pathsep.join(path + ([extra] if extra else [])),
                                    _runtime_env.WORKER_ENV_VAR: spec.json}, cwd)
