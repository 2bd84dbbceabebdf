"""The node's log files, served to the head for the state API (``spindle logs``, ``/api/v0/logs``).

Only regular files directly in the agent's log directory are served, by base name: no path separators,
no symlinks (opened with O_NOFOLLOW), so a caller cannot read anything else on the node. Reading the
last N lines seeks from the end; following polls for appended bytes until the caller goes away.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Callable, Iterator

from spindle._proto import pb

CHUNK = 64 * 1024
FOLLOW_POLL_S = 0.2


class LogError(Exception):
    """A bad or unknown file name; the message says which files exist."""


def list_files(log_dir: str, pattern: str = "") -> list[pb.LogFile]:
    out = []
    try:
        names = sorted(os.listdir(log_dir))
    except OSError:
        return []
    for name in names:
        if pattern and not fnmatch.fnmatch(name, pattern):
            continue
        try:
            st = os.lstat(os.path.join(log_dir, name))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(pb.LogFile(filename=name, size=st.st_size, mtime=st.st_mtime))
    return out


def _open(log_dir: str, filename: str) -> int:
    if not filename or "/" in filename or filename in (".", "..") or "\0" in filename:
        raise LogError(f"{filename!r} is not a log file name (give a name as `spindle logs` lists them)")
    try:
        fd = os.open(os.path.join(log_dir, filename), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        names = ", ".join(f.filename for f in list_files(log_dir)) or "none"
        raise LogError(f"no log file {filename!r} on this node (its files: {names})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LogError(f"{filename!r} is not a regular file")
    return fd


def tail_offset(fd: int, lines: int) -> int:
    """Offset where the last ``lines`` lines of the file start (0 for the whole file)."""
    size = os.fstat(fd).st_size
    if lines <= 0 or size == 0:
        return 0
    pos, found = size, 0
    # a trailing newline ends the last line; it does not start an empty one
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        pos -= 1
    while pos > 0:
        step = min(CHUNK, pos)
        os.lseek(fd, pos - step, os.SEEK_SET)
        block = os.read(fd, step)
        idx = len(block)
        while True:
            idx = block.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            found += 1
            if found == lines:
                return pos - step + idx + 1
        pos -= step
    return 0


def read(log_dir: str, filename: str, lines: int, follow: bool, active: Callable[[], bool]) -> Iterator[bytes]:
    fd = _open(log_dir, filename)
    try:
        os.lseek(fd, tail_offset(fd, lines), os.SEEK_SET)
        while True:
            data = os.read(fd, CHUNK)
            if data:
                yield data
                continue
            if not follow or not active():
                return
            time.sleep(FOLLOW_POLL_S)
    finally:
        os.close(fd)
