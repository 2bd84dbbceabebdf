"""Where the head keeps the tables a replacement head must find again: actors, named actors, jobs, KV.

On Kubernetes the head pod is replaced, not restarted in place, so anything only in its memory is
gone. ``spindle start --head --storage PATH`` (or ``SPINDLE_HEAD_STORAGE``) keeps these tables in
SQLite (stdlib, one file, point it at the head pod's volume); without it they live in memory and a
new head rebuilds only what the node agents report when they re-register (live actors, names of
live actors). Both implement the same small interface: ``put``/``delete`` one row, ``load`` a table.
Values are bytes the head encodes itself (protobuf or JSON), so the store knows nothing of them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Protocol

TABLES = ("actors", "named", "jobs", "kv", "meta", "placement_groups")


class Tables(Protocol):
    """The head's durable tables: each one a map of bytes to bytes."""

    durable: bool

    def put(self, table: str, key: bytes, value: bytes) -> None: ...

    def delete(self, table: str, key: bytes) -> None: ...

    def load(self, table: str) -> dict[bytes, bytes]: ...

    def close(self) -> None: ...


class MemoryTables:
    """Tables that live as long as the head process (what a head without --storage has)."""

    durable = False

    def __init__(self) -> None:
        self._data: dict[str, dict[bytes, bytes]] = {t: {} for t in TABLES}
        self._lock = threading.Lock()

    def put(self, table: str, key: bytes, value: bytes) -> None:
        with self._lock:
            self._data[_checked(table)][key] = value

    def delete(self, table: str, key: bytes) -> None:
        with self._lock:
            self._data[_checked(table)].pop(key, None)

    def load(self, table: str) -> dict[bytes, bytes]:
        with self._lock:
            return dict(self._data[_checked(table)])

    def close(self) -> None:
        pass


class SqliteTables:
    """Tables in one SQLite file (WAL journal: a write is one small append; readers never block it)."""

    durable = True

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)  # it holds pickles
        os.close(fd)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for t in TABLES:
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {t} (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        except sqlite3.DatabaseError as e:
            raise OSError(f"cannot use {path} as the head's storage: {e} (is it a Spindle head database? "
                          "point --storage at a new file to start empty)") from None

    def put(self, table: str, key: bytes, value: bytes) -> None:
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO {_checked(table)} (k, v) VALUES (?, ?)", (key, value))

    def delete(self, table: str, key: bytes) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {_checked(table)} WHERE k = ?", (key,))

    def load(self, table: str) -> dict[bytes, bytes]:
        with self._lock:
            return {bytes(k): bytes(v) for k, v in self._db.execute(f"SELECT k, v FROM {_checked(table)}")}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _checked(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown head table {table!r}")
    return table


def open_tables(storage: str | None) -> Tables:
    """SQLite at ``storage`` (or $SPINDLE_HEAD_STORAGE) when given, else in memory."""
    path = storage or os.environ.get("SPINDLE_HEAD_STORAGE", "")
    return SqliteTables(path) if path else MemoryTables()
