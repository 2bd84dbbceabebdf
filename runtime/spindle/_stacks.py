"""Every Spindle process prints the Python stack of each of its threads on SIGUSR1.

A process that hangs must be able to say where: ``kill -USR1 <pid>`` makes a head, node agent,
worker, zygote or driver write all its threads' stacks to its stderr (its log file, the pod's
log, the job's log or the terminal) and carry on. It is ``faulthandler``'s C-level handler, so it answers even when the
main thread is blocked in C code (a lock, a socket, a gRPC call). A driver is the user's
program: it gets the handler only when nothing else has claimed SIGUSR1.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

SIGNAL = getattr(signal, "SIGUSR1", None)


def install(*, library: bool = False) -> bool:
    """Dump all threads' stacks to stderr on SIGUSR1; ``library``: only if SIGUSR1 is still unclaimed."""
    if SIGNAL is None:
        return False
    if library and signal.getsignal(SIGNAL) not in (signal.SIG_DFL, None):
        return False
    try:
        faulthandler.register(SIGNAL, file=sys.__stderr__ or sys.stderr, all_threads=True, chain=False)
    except (ValueError, RuntimeError, AttributeError, OSError):  # no usable stderr (closed, or no fileno)
        return False
    return True
