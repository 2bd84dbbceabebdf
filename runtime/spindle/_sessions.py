"""The per-user temp dir: sessions, logs, the `spindle start` record; none of it trusted unless it is ours.

A shared /tmp is hostile ground: anyone can pre-create a directory or plant a symlink where we
are about to write the cluster token, or write an address.json that points `init(address="auto")`
at their own head, or a pid list that `spindle stop` would kill. So the root is per user
(``$SPINDLE_TEMP_DIR``, else ``$XDG_RUNTIME_DIR/spindle``, else ``/tmp/spindle-<uid>``), created
0700 and refused unless it is a real directory owned by us that nobody else can write; files are
created 0600 without following symlinks, and read back only when we own them and nobody else can
read or write them. Old sessions are removed, keeping the newest ``SPINDLE_KEEP_SESSIONS`` (10)
and every session that still has a live process.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from typing import Any

from spindle import _ids, _procs

KEEP_SESSIONS = 10
ROTATE_MIN_AGE_S = 120.0  # a session younger than this may be starting up: never remove it
PROCESSES = "processes.json"
# The head's KvGet answers this read-only key with the cluster's session name (get_session_name in workers).
SESSION_NAME_KEY = "spindle:session_name"


class UnsafeTempDirError(RuntimeError):
    """The temp dir (or a file in it) is not safely ours; the message names the fix."""


def temp_root() -> str:
    explicit = os.environ.get("SPINDLE_TEMP_DIR")
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.stat(xdg).st_uid == os.geteuid():
        return os.path.join(xdg, "spindle")
    return os.path.join(tempfile.gettempdir(), f"spindle-{os.geteuid()}")


def _refuse(path: str, why: str) -> UnsafeTempDirError:
    return UnsafeTempDirError(
        f"spindle: refusing to use {path}: {why}. If it is not yours, remove it (rm -rf {path}); or set "
        "SPINDLE_TEMP_DIR to a directory that only you can write.")


def private_dir(path: str) -> str:
    """Create ``path`` (mode 0700) or check it: a real directory, ours, writable by nobody else."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, f"it is a symlink (to {os.readlink(path)})")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "it is not a directory")
    if st.st_uid != os.geteuid():
        raise _refuse(path, f"it belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})")
    if st.st_mode & 0o022:
        raise _refuse(path, f"others can write to it (mode {stat.S_IMODE(st.st_mode):o})")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours and nobody else could write to it: just make it private
    return path


def root() -> str:
    return private_dir(temp_root())


def address_file() -> str:
    return os.path.join(temp_root(), "session_latest", "address.json")


def new_session(keep: int | None = None) -> str:
    """A fresh session dir (with logs/) under the checked root; older sessions are rotated out."""
    base = root()
    name = f"session_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}_{_ids.new_id().hex()[:4]}"
    session = os.path.join(base, name)
    os.mkdir(session, 0o700)
    os.mkdir(os.path.join(session, "logs"), 0o700)
    try:
        rotate(base, keep)
    except OSError:
        pass  # rotation is housekeeping: never fail a start because of it
    return session


def open_log(path: str) -> int:
    """A log file descriptor: created 0600, appended to, never through a symlink."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def write_private_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` atomically, 0600, in a directory we checked."""
    private_dir(os.path.dirname(path))
    tmp = f"{path}.{os.getpid()}.{_ids.new_id().hex()[:6]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_trusted_json(path: str) -> Any:
    """The JSON in ``path`` if we own it and nobody else can touch it; None when absent.

    Raises UnsafeTempDirError when the file exists but is not trustworthy (a symlink, someone
    else's, or readable/writable by others).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if os.path.islink(path):
            raise _refuse(path, "it is a symlink") from None
        raise _refuse(path, f"it cannot be opened ({e.strerror})") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "it is not a regular file")
        if st.st_uid != os.geteuid():
            raise _refuse(path, f"it belongs to uid {st.st_uid}, not to you")
        if st.st_mode & 0o077:
            raise _refuse(path, f"others can read or write it (mode {stat.S_IMODE(st.st_mode):o})")
        try:
            return json.load(f)
        except ValueError:
            return None


# ------------------------------------------------------------------- processes of a session
def record_processes(session: str, procs: list[tuple[str, int]], cli: bool) -> None:
    """Remember which processes this session started (role, pid, start time) for stop and rotation."""
    entries = [{"role": role, "pid": pid, "start": _procs.start_ticks(pid)} for role, pid in procs]
    write_private_json(os.path.join(session, PROCESSES), {"cli": cli, "processes": entries})


def session_record(session: str) -> dict[str, Any] | None:
    try:
        data = read_trusted_json(os.path.join(session, PROCESSES))
    except UnsafeTempDirError:
        return None
    return data if isinstance(data, dict) else None


def live_processes(session: str) -> list[_procs.ProcInfo]:
    """The recorded processes of ``session`` that are still the ones we started."""
    data = session_record(session) or {}
    out = []
    for e in data.get("processes", []):
        try:
            i = _procs.verified(int(e["pid"]), int(e["start"]), str(e["role"]))
        except (KeyError, TypeError, ValueError):
            continue
        if i is not None:
            out.append(i)
    return out


def sessions(base: str) -> list[str]:
    """Session dirs under ``base`` that are real directories of ours, oldest first."""
    out = []
    for name in sorted(os.listdir(base)):
        if not name.startswith("session_") or name == "session_latest":
            continue
        path = os.path.join(base, name)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            out.append(path)
    return out


def rotate(base: str, keep: int | None = None) -> list[str]:
    """Remove old sessions beyond the newest ``keep`` that have no live process; returns what went."""
    if keep is None:
        try:
            keep = int(os.environ.get("SPINDLE_KEEP_SESSIONS", "") or KEEP_SESSIONS)
        except ValueError:
            keep = KEEP_SESSIONS
    all_sessions = sessions(base)
    old = all_sessions[: max(0, len(all_sessions) - keep)]
    removed = []
    now = time.time()
    for path in old:
        if now - os.lstat(path).st_mtime < ROTATE_MIN_AGE_S or live_processes(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
