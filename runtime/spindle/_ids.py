"""Identifiers: random bytes, shown as hex. Return-object ids derive from the task id."""

from __future__ import annotations

import os

ID_LEN = 16


def new_id() -> bytes:
    return os.urandom(ID_LEN)


def return_id(task_id: bytes, index: int) -> bytes:
    return task_id[:12] + (index + 1).to_bytes(4, "little")
