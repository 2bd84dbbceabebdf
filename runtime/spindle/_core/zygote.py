"""A node's worker zygote (``python -m spindle._core.zygote``): forks ready-imported workers in milliseconds.

Starting a worker as a new interpreter costs an interpreter boot plus importing gRPC, protobuf,
cloudpickle and the runtime (about half a second of CPU, seconds on a loaded node), paid again for
every actor. The zygote pays it once: it imports everything a worker needs, creates no gRPC
channel, server or thread (gRPC's state must not cross a fork), and then forks one child per
request. The child sets its worker's environment and runs ``spindle._core.worker.main``, which
builds its own gRPC server and channels. Forked workers also share the zygote's pages
copy-on-write, so each costs less memory than a fresh interpreter.

Protocol with the node agent (``_agent/zygote_client.py``), one JSON object per line: the zygote
writes ``{"ready": pid}`` once imported; the agent writes ``{"env": {...}}`` per worker and the
zygote answers ``{"pid": pid}`` (or ``{"error": text}``); when a child exits the zygote writes
``{"exit": pid, "code": returncode}`` (negative: killed by that signal, as ``Popen.returncode``).
The zygote exits when the agent closes its end (the agent is gone); its children notice their
parent went away and exit too.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import select
import signal
import sys

from spindle import _lifeline, _stacks


def _preload() -> None:
    """Import what a worker imports, including what CoreWorker imports lazily (not this module's caller)."""
    import importlib
    import pkgutil

    import cloudpickle  # noqa: F401
    import grpc  # noqa: F401

    import spindle._core

    for mod in pkgutil.iter_modules(spindle._core.__path__):
        if mod.name != "zygote":
            importlib.import_module(f"spindle._core.{mod.name}")
    # what grpc imports on a worker's first channel and server: imported after the fork, these were private
    # to every worker (and dirtied the inherited pages their objects were allocated into)
    for name in ("grpc._channel", "grpc._server", "grpc._interceptor", "grpc._simple_stubs", "grpc.experimental"):
        importlib.import_module(name)


def _freeze() -> None:
    """Keep the collector off the inherited heap: a full collection in a worker writes to the header of every
    tracked object it scans, which copied ~8.5 MiB of the zygote's pages into each long-lived worker."""
    gc.collect()
    gc.freeze()


def _child(env: dict[str, str], out_fd: int, in_fd: int, wake_fds: tuple[int, int]) -> None:
    try:
        for fd in (out_fd, in_fd, *wake_fds):
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.update(env)
        os.environ[_lifeline.ENV] = str(os.getppid())  # the worker dies with the zygote (see _lifeline)
        from spindle._core import worker

        worker.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never return into the zygote's loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
    os._exit(code)


def main() -> None:
    # stdin/stdout are the control pipes; what workers print goes to stderr, as with a fresh worker
    _lifeline.die_with_parent()  # the zygote dies with its agent
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    _stacks.install()  # kill -USR1 prints the zygote's stacks to stderr
    _preload()
    _freeze()
    r_wake, w_wake = os.pipe()
    os.set_blocking(r_wake, False)
    os.set_blocking(w_wake, False)
    signal.set_wakeup_fd(w_wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    out = os.fdopen(out_fd, "w", buffering=1)
    children: set[int] = set()
    pending = b""

    def send(msg: dict) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    send({"ready": os.getpid()})
    while True:
        try:
            readable, _, _ = select.select([in_fd, r_wake], [], [])
        except InterruptedError:
            continue
        if r_wake in readable:
            try:
                os.read(r_wake, 4096)
            except BlockingIOError:
                pass
        reap()
        if in_fd not in readable:
            continue
        data = os.read(in_fd, 65536)
        if not data:
            return  # the agent is gone
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                env = json.loads(line)["env"]
                if os.environ.get("SPINDLE_TESTING_ZYGOTE_FORK_FAILS") == "1":  # fault injection for tests
                    raise OSError(errno.EAGAIN, "fork refused (SPINDLE_TESTING_ZYGOTE_FORK_FAILS)")
                pid = os.fork()
            except (OSError, ValueError, KeyError) as e:
                send({"error": str(e)})
                continue
            if pid == 0:
                _child(env, out_fd, in_fd, (r_wake, w_wake))
            children.add(pid)
            send({"pid": pid})


if __name__ == "__main__":
    main()
