"""Small network helpers with no gRPC import, so light processes and the CLI start fast."""

from __future__ import annotations

import secrets
import socket


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
