"""Small network helpers with no gRPC import, so light processes and the CLI start fast.

Also the process's file-descriptor budget: every Spindle process raises its soft RLIMIT_NOFILE to
the hard limit at start (like Ray), and servers derive their cap on incoming connections from it
so that a flood of connections can never take the descriptors the process needs for its own work.
"""

from __future__ import annotations

import os
import resource
import secrets
import socket

FD_CEILING = 1 << 20  # never ask for more than this, even when the hard limit is "unlimited"


def new_token() -> str:
    return secrets.token_hex(16)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def routable_ip(towards: str | None = None) -> str:
    """The local IP used to reach ``towards`` (host or host:port), or a best guess."""
    target = (towards or "10.255.255.255").rsplit(":", 1)[0]
    if target in ("127.0.0.1", "localhost"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((target, 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (capped at FD_CEILING); return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_CEILING)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return FD_CEILING if soft == resource.RLIM_INFINITY else int(soft)


def incoming_connection_cap(fd_limit: int) -> int:
    """How many connections a server accepts at once: the fd budget minus a reserve for the process itself.

    The reserve (a quarter, at least 64) covers outgoing channels, store files, pipes and logs, so
    idle or hostile connections fill at most the rest and the process keeps working.
    """
    return max(16, fd_limit - max(64, fd_limit // 4))


def check_bindable(host: str) -> None:
    """Fail early, naming the fix, when ``host`` is not an address of this machine."""
    if host in ("0.0.0.0", "", "::"):
        return
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
    except OSError as e:
        raise OSError(f"cannot listen on {host}: it is not an address of this machine ({e.strerror}); set "
                      "SPINDLE_NODE_IP / --node-ip to one of this machine's IPs (or --host 0.0.0.0 for a head "
                      "that must listen everywhere)") from None


def env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default
