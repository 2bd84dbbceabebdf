"""Is pid N really the Spindle process we started? Read from /proc, trusted only when it all matches.

A pid in a file is just a number: the process may have died and the number been reused, or the
file may have been written by someone else. Before signalling a pid, `spindle stop` and session
rotation check that it belongs to this user, runs a Spindle entry point (head, agent or worker),
and started at the time recorded when we spawned it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# a worker forked by its node's zygote keeps the zygote's command line, so it shows as "zygote" too
ROLES = {"head": "spindle._head", "agent": "spindle._agent", "worker": "spindle._core.worker",
         "zygote": "spindle._core.zygote", "embedded": "spindle._embedded"}  # embedded: head + agent of init()


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    uid: int
    start_ticks: int
    argv: tuple[str, ...]

    def role(self) -> str:
        """head / agent / worker / zygote / embedded when this is exactly ``python -m <a Spindle entry point> ...``, else ''."""
        if len(self.argv) < 3 or self.argv[1] != "-m":
            return ""
        for role, entry in ROLES.items():
            if self.argv[2] == entry:
                return role
        return ""


def info(pid: int) -> ProcInfo | None:
    """What /proc says about ``pid`` (None when it does not exist or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = tuple(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    uid = -1
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])  # real uid
            break
    return ProcInfo(pid=pid, ppid=int(fields[1]), uid=uid, start_ticks=int(fields[19]), argv=argv)


def start_ticks(pid: int) -> int:
    i = info(pid)
    return i.start_ticks if i is not None else -1


def verified(pid: int, start: int, role: str) -> ProcInfo | None:
    """The process if it is still the one recorded: same start time, this user's, the given Spindle role."""
    i = info(pid)
    if i is None or i.uid != os.getuid() or i.start_ticks != start or i.role() != role:
        return None
    return i


def spindle_children(parent: ProcInfo) -> list[ProcInfo]:
    """This user's Spindle workers whose parent is ``parent`` (an agent's worker processes), with the
    agent's zygote and the workers it forked."""
    procs = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        i = info(int(name))
        if i is not None and i.uid == os.getuid() and i.role() in ("worker", "zygote"):
            procs.append(i)
    out = [i for i in procs if i.ppid == parent.pid]
    zygotes = {i.pid for i in out if i.role() == "zygote"}
    out += [i for i in procs if i.ppid in zygotes]
    return out
