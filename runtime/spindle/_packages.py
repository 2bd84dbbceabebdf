"""Packages uploaded for ``working_dir`` / ``py_modules``, stored once by name and unpacked on demand.

The head keeps the uploads (from the job client over HTTP, from drivers over gRPC); every node agent
keeps its own store of the packages its workers need, fetched from the head.

Names come from the client and are content-derived (see spindle.job_submission.packaging), so a
name that exists is never overwritten and the same archive is unpacked once per head. Names are
checked strictly: they become file names here.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}\.(zip|whl)$")
PROTOCOLS = ("gcs",)


class PackageError(ValueError):
    """A package name, protocol or archive the head cannot accept (the message names the fix)."""


def check_name(protocol: str, name: str) -> None:
    if protocol not in PROTOCOLS:
        raise PackageError(f"unsupported package protocol {protocol!r}: upload packages as 'gcs://<name>.zip'")
    if not _NAME.match(name) or ".." in name:
        raise PackageError(f"invalid package name {name!r}: expected letters, digits, '_', '-', '.' ending in .zip")


class PackageStore:
    def __init__(self, root: str):
        self.root = root
        self._lock = threading.Lock()
        os.makedirs(os.path.join(root, "uploads"), mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(root, "unpacked"), mode=0o700, exist_ok=True)

    def _path(self, protocol: str, name: str) -> str:
        check_name(protocol, name)
        return os.path.join(self.root, "uploads", f"{protocol}_{name}")

    def path_of(self, protocol: str, name: str) -> str:
        """The stored archive's file (checked name)."""
        return self._path(protocol, name)

    def exists(self, protocol: str, name: str) -> bool:
        return os.path.exists(self._path(protocol, name))

    def put(self, protocol: str, name: str, data: bytes) -> None:
        path = self._path(protocol, name)
        if name.endswith(".zip"):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    bad = zf.testzip()
            except zipfile.BadZipFile as e:
                raise PackageError(f"package {name!r} is not a valid zip archive ({e})") from None
            if bad is not None:
                raise PackageError(f"package {name!r} is corrupt (first bad member: {bad})")
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole archive or none

    def archive(self, uri: str) -> str:
        """The uploaded archive's path (to ship it to another node); PackageError if it was never uploaded."""
        protocol, _, name = uri.partition("://")
        src = self._path(protocol, name)
        if not os.path.exists(src):
            raise PackageError(f"package {uri} was not uploaded to this head: submit with a local directory so the "
                               "client uploads it")
        return src

    def unpack(self, uri: str) -> str:
        """The directory holding ``uri``'s files (unpacked once); PackageError if it was never uploaded."""
        protocol, _, name = uri.partition("://")
        src = self._path(protocol, name)
        if not os.path.exists(src):
            raise PackageError(f"package {uri} was not uploaded to this head: submit with a local directory so the "
                               "client uploads it, or upload it with PUT /api/packages/{protocol}/{name}")
        dest = os.path.join(self.root, "unpacked", f"{protocol}_{name}")
        with self._lock:
            if os.path.isdir(dest):
                return dest
            tmp = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=".unpack-")
            try:
                with zipfile.ZipFile(src) as zf:
                    for member in zf.infolist():
                        target = os.path.realpath(os.path.join(tmp, member.filename))
                        if not target.startswith(os.path.realpath(tmp) + os.sep):
                            raise PackageError(f"package {uri} has a member outside its root: {member.filename!r}")
                        zf.extract(member, tmp)
                        mode = (member.external_attr >> 16) & 0o777
                        if mode and not member.is_dir():
                            os.chmod(target, mode | 0o400)
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return dest


class PipInstallError(RuntimeError):
    """``pip install`` for a runtime_env failed; the message carries pip's output and the fix."""


def pip_install(packages: list[str], target: str, log_path: str, timeout_s: float) -> str:
    """Install ``packages`` into ``target`` (a directory put first on the path) with this interpreter's pip."""
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
            "--retries", "1", "--timeout", "15", "--target", target, *packages]
    try:
        with open(log_path, "wb") as f:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        raise PipInstallError(f"pip install {' '.join(packages)} took longer than {timeout_s:.0f}s "
                              "(SPINDLE_PIP_TIMEOUT_S); is the package index reachable from the node?") from None
    if rc != 0:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-2000:]
        raise PipInstallError(
            f"pip install {' '.join(packages)} failed (exit code {rc}). If the package index is unreachable from "
            "the cluster, bake the packages into the image or set PIP_INDEX_URL to a reachable mirror. pip said:\n"
            + tail)
    return target
