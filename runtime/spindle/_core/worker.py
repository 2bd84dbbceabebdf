"""Entry point of a worker process (``python -m spindle._core.worker``), started by its node agent.

It serves CoreWorker on a free port, registers with the agent, sends what user code prints back
to the caller (prefixed like Ray: ``(name pid=…, ip=…)``), runs tasks on the main thread, and
exits when the agent that started it goes away.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time

import grpc

from spindle import _stacks
from spindle._core import context as _context
from spindle._core.core_worker import CoreWorker
from spindle._core.executor import Executor
from spindle._lifeline import die_with_parent
from spindle._proto import pb
from spindle._rpc.channels import TOKEN_KEY


class LogStream(io.TextIOBase):
    """Replaces sys.stdout/sys.stderr: complete lines go to the current caller's stream."""

    def __init__(self, executor: Executor, is_err: bool, fallback: io.TextIOBase, ip: str, to_file: bool = False):
        self.executor = executor
        self.is_err = is_err
        self.fallback = fallback
        self.suffix = f" pid={os.getpid()}, ip={ip})"
        self.to_file = to_file
        self.buf = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        pending = getattr(self.buf, "text", "") + s
        lines = pending.split("\n")
        self.buf.text = lines.pop()
        if lines:
            self._emit(lines)
        return len(s)

    def _emit(self, lines: list[str]) -> None:
        sink, name = self.executor.log_target()
        if sink is None:
            for line in lines:
                self.fallback.write(line + "\n")
            self.fallback.flush()
            return
        prefix = f"({name or 'worker'}{self.suffix} "
        for line in lines:
            sink.q.put(pb.LogLine(text=prefix + line, stderr=self.is_err))
        if self.to_file:  # the worker's log file keeps a copy (spindle logs, the dashboard)
            self.fallback.write("".join(line + "\n" for line in lines))
            self.fallback.flush()

    def flush(self) -> None:
        rest = getattr(self.buf, "text", "")
        if rest:
            self.buf.text = ""
            self._emit([rest])

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fallback.fileno()


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def redirect_output(log_dir: str, worker_id: str) -> bool:
    """Send this process's stdout/stderr (fds 1 and 2) to ``worker-<id>-<pid>.out``/``.err`` in ``log_dir``."""
    if not log_dir:
        return False
    try:
        for fd, ext in ((1, "out"), (2, "err")):
            path = os.path.join(log_dir, f"worker-{worker_id}-{os.getpid()}.{ext}")
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            os.dup2(target, fd)
            os.close(target)
    except OSError as e:
        print(f"spindle worker: cannot write logs under {log_dir}: {e}", file=sys.__stderr__)
        return False
    return True


def main() -> None:
    die_with_parent()  # SIGKILL when the agent dies, even if this worker's Python is stuck in C code
    env = os.environ
    to_file = redirect_output(env.get("SPINDLE_LOG_DIR", ""), env["SPINDLE_WORKER_ID"])
    _stacks.install()  # kill -USR1 prints every thread's stack to the worker's .err log
    token = env["SPINDLE_TOKEN"]
    agent_address = env["SPINDLE_AGENT_ADDRESS"]
    ip = env.get("SPINDLE_NODE_IP", "127.0.0.1")
    cw = CoreWorker(mode="worker", token=token, head_address=env["SPINDLE_HEAD_ADDRESS"],
                    agent_address=agent_address, node_id=env["SPINDLE_NODE_ID"], ip=ip,
                    worker_id=env["SPINDLE_WORKER_ID"])
    executor = Executor(cw)
    cw.executor = executor
    _context.set_core(cw)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    sys.stdout = LogStream(executor, False, sys.__stdout__, ip, to_file)  # type: ignore[arg-type,assignment]
    sys.stderr = LogStream(executor, True, sys.__stderr__, ip, to_file)  # type: ignore[arg-type,assignment]
    from spindle._proto import rpc
    from spindle._rpc import local_stream, tcp_stream

    local_stream.serve(cw.address, token, executor.serve_local)  # before registering: callers may connect at once
    executor.tcp_stream = tcp_stream.OnDemand(cw.address, token, executor.serve_local)  # callers on other nodes
    try:
        reply = rpc.NodeAgentStub(cw.channels.get(agent_address)).RegisterWorker(
            pb.RegisterWorkerRequest(worker_id=cw.worker_id, address=cw.address, pid=os.getpid()),
            metadata=((TOKEN_KEY, token),), timeout=30, wait_for_ready=True)
    except grpc.RpcError as e:
        print(f"spindle worker: cannot register with agent {agent_address}: {e}", file=sys.__stderr__)
        os._exit(1)
    cw.head_address = reply.head_address or cw.head_address
    executor.run_forever()


if __name__ == "__main__":
    main()
