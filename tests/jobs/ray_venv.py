"""Ray's own job client and CLI, installed where the compatibility tests can run them: a venv under
~/.cache/spindle-ray/ with ``ray[default]`` at a pinned version (the extra brings aiohttp, which Ray's
``tail_job_logs`` and ``ray job submit`` need). Created on first use from PyPI (a few minutes, once per
machine), reused afterwards; a machine-wide lock keeps parallel test runs from building it twice.

Ray is never a dependency of Spindle: it lives only in this venv and runs only as a subprocess.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

RAY_VERSION = os.environ.get("SPINDLE_TEST_RAY_VERSION", "2.60.0")
CACHE = Path(os.environ.get("SPINDLE_RAY_VENV_CACHE", Path.home() / ".cache/spindle-ray"))
INSTALL_TIMEOUT_S = 1800


def _usable(python: Path) -> bool:
    if not python.exists():
        return False
    probe = "import aiohttp, ray, ray.job_submission; print(ray.__version__)"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    return out.returncode == 0 and out.stdout.strip() == RAY_VERSION


def ray_python() -> Path:
    """The interpreter of a venv with ``ray[default]==RAY_VERSION``, created if needed."""
    venv = CACHE / f"venv-{RAY_VERSION}"
    python = venv / "bin/python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(python):
            return python
        shutil.rmtree(venv, ignore_errors=True)  # half-built by an interrupted run
        print(f"\ninstalling ray[default]=={RAY_VERSION} into {venv} (once per machine)...", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
        proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                               f"ray[default]=={RAY_VERSION}"], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False)
        if proc.returncode != 0 or not _usable(python):
            raise RuntimeError(f"could not install ray[default]=={RAY_VERSION} from the package index into {venv} "
                               f"(is PyPI reachable? PIP_INDEX_URL names a mirror):\n{proc.stderr[-3000:]}")
        return python


if __name__ == "__main__":  # scripts/test.sh builds it before pytest, outside any test's timeout
    print(ray_python())
