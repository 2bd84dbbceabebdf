"""Packing a local ``working_dir`` or ``py_modules`` directory for upload, named by its content.

The client zips the directory and names the archive after a hash of its files (paths and bytes),
so submitting the same directory twice uploads it once: the head answers "exists" for a name it
already holds. URIs have Ray's form, ``gcs://<name>.zip``, which is what the package endpoints
(``/api/packages/{protocol}/{name}``) and Ray's own client use.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
from collections.abc import Iterator, Sequence

PROTOCOL = "gcs"
MAX_PACKAGE_BYTES = int(os.environ.get("SPINDLE_MAX_PACKAGE_BYTES", str(512 * 1024 * 1024)))
DEFAULT_EXCLUDES = (".git", "__pycache__", "*.pyc", ".venv", ".mypy_cache", ".pytest_cache")


def is_remote_uri(value: str) -> bool:
    return "://" in value


def uri_to_http_components(uri: str) -> tuple[str, str]:
    protocol, _, name = uri.partition("://")
    if not protocol or not name or "/" in name:
        raise ValueError(f"{uri!r} is not a package URI of the form 'gcs://<name>.zip'")
    return protocol, name


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(rel, pat) or any(fnmatch.fnmatch(p, pat) for p in parts):
            return True
    return False


def _files(root: str, excludes: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(relative path inside the archive, absolute path), sorted so the hash is stable."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames
                             if not _excluded(os.path.normpath(os.path.join(rel_dir, d)).replace(os.sep, "/"), excludes))
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
            if not _excluded(rel, excludes):
                yield rel, os.path.join(dirpath, name)


def pack_directory(path: str, *, include_parent_dir: bool = False,
                   excludes: Sequence[str] = ()) -> tuple[str, bytes]:
    """Zip ``path`` and return (its URI, the zip's bytes). Raises ValueError naming the problem."""
    import zipfile  # here, not at the top: every driver imports this module, few pack a directory (~1 MiB)

    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise ValueError(f"{path!r} is not a directory: working_dir and py_modules take a local directory "
                         "(or a package URI like gcs://name.zip)")
    prefix = os.path.basename(root.rstrip("/")) + "/" if include_parent_dir else ""
    patterns = list(DEFAULT_EXCLUDES) + list(excludes)
    digest = hashlib.sha256(prefix.encode())
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, full in _files(root, patterns):
            with open(full, "rb") as f:
                data = f.read()
            total += len(data)
            if total > MAX_PACKAGE_BYTES:
                raise ValueError(f"{path!r} holds more than {MAX_PACKAGE_BYTES // (1024 * 1024)} MiB: add "
                                 "'excludes' to the runtime_env for large files, or ship them another way")
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            info = zipfile.ZipInfo(prefix + rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(full).st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return f"{PROTOCOL}://_spindle_pkg_{digest.hexdigest()[:32]}.zip", buf.getvalue()
