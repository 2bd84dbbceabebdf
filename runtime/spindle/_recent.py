"""A bounded set that forgets its oldest members: ids remembered for a while (leases revoked, leases used) by
processes that must answer about them later without growing forever. Not locked: its owner's lock guards it."""

from __future__ import annotations

import collections
from collections.abc import Hashable


class Recent:
    def __init__(self, limit: int) -> None:
        self._ids: collections.OrderedDict[Hashable, None] = collections.OrderedDict()
        self.limit = limit

    def add(self, key: Hashable) -> None:
        """Remember ``key`` (again: as the newest); the oldest beyond ``limit`` are forgotten."""
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)
