"""Starting a head and a node agent as local processes: the embedded cluster and `spindle start`.

``init()`` with no address uses this to start the same processes a Kubernetes cluster runs, on
loopback, and ``shutdown()`` stops them and removes the node's store files. The children get
SIGKILL when the process that started them dies (PR_SET_PDEATHSIG, set by the child: see
``_lifeline``), so a crashed driver leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from spindle import _ids, _lifeline, _sessions, _store
from spindle._rpc.net import free_port, new_token


def service_setup(role: str) -> str:
    """Common start of the head and agent processes: logging, the fd limit, stack dumps, the cluster token."""
    import logging

    from spindle._rpc.net import raise_fd_limit

    raise_fd_limit()  # before the agent starts its workers, so they inherit it
    from spindle import _stacks

    _stacks.install()  # kill -USR1 prints every thread's stack to our log

    token = os.environ.get("SPINDLE_TOKEN", "")
    if not token:
        sys.exit(f"spindle {role}: SPINDLE_TOKEN is not set")
    logging.basicConfig(level=os.environ.get("SPINDLE_LOG_LEVEL", "WARNING"),
                        format=f"%(asctime)s {role} %(levelname)s %(message)s")
    return token


def announce(line: str) -> None:
    """Print the start-up marker for whoever started us, then detach stdout from that pipe.

    The starter stops reading once it has the line; a later write to the pipe must not kill us.
    """
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)




def _read_marker(stream: IO[bytes], marker: str, proc: subprocess.Popen[bytes], timeout: float, log: str,
                 seen: dict[str, str] | None = None) -> str:
    """The value of the ``MARKER=value`` line; earlier ``NAME=value`` lines are put into ``seen``."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            complete = buf.decode(errors="replace").split("\n")[:-1]  # a line counts once its newline arrived
            for line in complete:
                name, eq, value = line.partition("=")
                if eq and seen is not None:
                    seen[name] = value.strip()
                if name == marker and eq:
                    return value.strip()
        elif proc.poll() is not None:
            break
    tail = ""
    try:
        with open(log) as f:
            tail = f.read()[-2000:]
    except OSError:
        pass
    raise RuntimeError(f"spindle: a cluster process failed to start (exit code {proc.poll()}). Its log ({log}):\n{tail}")


@dataclass
class LocalProcesses:
    head_address: str
    agent_address: str
    node_id: str
    token: str
    session_dir: str
    procs: list[subprocess.Popen[bytes]]
    dashboard_address: str = ""
    metrics_address: str = ""  # http://host:port of the head's Prometheus metrics, when it serves them

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        _store.delete_all(self.node_id)


@dataclass
class Pending:
    """Processes spawned but not yet confirmed ready (the caller can work meanwhile)."""

    procs: list[subprocess.Popen[bytes]]
    head_proc: subprocess.Popen[bytes] | None
    agent_proc: subprocess.Popen[bytes]
    head_address: str
    node_id: str
    token: str
    session_dir: str
    with_dashboard: bool = False
    one_process: bool = False  # head_proc is agent_proc: one announcement carries every marker
    # starts the same cluster again on another free port: set when the head's port was picked here, which another
    # process may take before the head binds it (then the start is retried, up to BIND_RETRIES times)
    respawn: Callable[[], Pending] | None = None

    def wait_ready(self, retries: int = 2) -> LocalProcesses:
        try:
            return self._wait_ready()
        except RuntimeError as e:
            if self.respawn is None or retries <= 0 or not _lost_port_race(str(e)):
                raise
        return self.respawn().wait_ready(retries - 1)

    def _wait_ready(self) -> LocalProcesses:
        logs = os.path.join(self.session_dir, "logs")
        head_address = self.head_address
        seen: dict[str, str] = {}
        try:
            if self.one_process:
                assert self.agent_proc.stdout is not None
                agent_address = _read_marker(self.agent_proc.stdout, "SPINDLE_AGENT_ADDRESS", self.agent_proc, 60,
                                             os.path.join(logs, "agent.log"), seen)
                head_address = f"{head_address.rsplit(':', 1)[0]}:{seen['SPINDLE_HEAD_PORT']}"
            elif self.head_proc is not None and self.head_proc.stdout is not None:
                # the head prints its gRPC port first, then (when it has one) its job API port
                last = "SPINDLE_DASHBOARD_PORT" if self.with_dashboard else "SPINDLE_HEAD_PORT"
                value = _read_marker(self.head_proc.stdout, last, self.head_proc, 60, os.path.join(logs, "head.log"),
                                     seen)
                head_port = seen.get("SPINDLE_HEAD_PORT", value)
                head_address = f"{head_address.rsplit(':', 1)[0]}:{head_port}"
            if not self.one_process:
                assert self.agent_proc.stdout is not None
                agent_address = _read_marker(self.agent_proc.stdout, "SPINDLE_AGENT_ADDRESS", self.agent_proc, 60,
                                             os.path.join(logs, "agent.log"))
        except BaseException:
            for p in self.procs:
                p.kill()
            raise
        dashboard = ""
        if "SPINDLE_DASHBOARD_PORT" in seen:
            dashboard = f"http://{head_address.rsplit(':', 1)[0]}:{seen['SPINDLE_DASHBOARD_PORT']}"
        metrics = ""
        if "SPINDLE_METRICS_PORT" in seen:
            metrics = f"http://{head_address.rsplit(':', 1)[0]}:{seen['SPINDLE_METRICS_PORT']}"
        return LocalProcesses(head_address, agent_address, self.node_id, self.token, self.session_dir, self.procs,
                              dashboard, metrics)


def _lost_port_race(failure: str) -> bool:
    """Whether a start failed because the free port picked for the head was taken before it could bind it."""
    return "cannot listen on" in failure or "Failed to bind to address" in failure


def start(**kwargs: Any) -> LocalProcesses:
    return spawn(**kwargs).wait_ready()


def spawn(*, head: bool = True, head_address: str = "", host: str = "127.0.0.1", port: int = 0,
          num_cpus: float | None = None, num_gpus: float | None = None, resources: dict[str, float] | None = None,
          token: str | None = None, node_ip: str | None = None, tie_to_parent: bool = True,
          cli: bool = False, head_args: list[str] | None = None, object_store_memory: int | None = None,
          spill_dir: str | None = None, dashboard_port: int = 8265, dashboard_port_fallback: bool = True,
          labels: dict[str, str] | None = None, one_process: bool = False) -> Pending:
    """Start a head (when ``head``) and a node agent; ``cli`` marks a `spindle start` session for `spindle stop`.

    ``dashboard_port`` -1 starts no job API; with the fallback, a taken port means any free one.
    ``one_process`` runs head and agent in one process (``spindle._embedded``: the embedded cluster of
    ``init()``, unless ``SPINDLE_EMBEDDED_SPLIT=1``), logging to the node's ``agent.log``; `spindle start` keeps
    them apart.
    """
    given = dict(locals())  # this call's arguments, before any is resolved below (a retry passes them again)
    one_process = head and one_process and os.environ.get("SPINDLE_EMBEDDED_SPLIT", "") != "1"
    token = token or os.environ.get("SPINDLE_TOKEN") or new_token()
    session_dir = _sessions.new_session()
    env = {**os.environ, "SPINDLE_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    env.pop("SPINDLE_ADDRESS", None)
    env.pop(_lifeline.ENV, None)
    if tie_to_parent:  # they die with us; set by the child itself (see _lifeline: no fork of a gRPC process)
        env = _lifeline.child_env(env)
    procs: list[subprocess.Popen[bytes]] = []
    head_proc = None
    head_argv: list[str] = []
    # the head's port is picked here, not by the head: if another process takes it first, start again (same token)
    respawn = functools.partial(spawn, **{**given, "token": token}) if head and not port else None
    if head:
        port = port or free_port(host if host != "0.0.0.0" else "127.0.0.1")
        head_argv = ["--host", host, "--port", str(port), "--dashboard-port", str(dashboard_port), "--session-dir",
                     session_dir, *(head_args or [])]
        if dashboard_port_fallback:
            head_argv.append("--dashboard-port-fallback")
        if not one_process:
            head_proc = _popen([sys.executable, "-m", "spindle._head", *head_argv], env, node_ip, tie_to_parent,
                               os.path.join(session_dir, "logs", "head.log"))
            procs.append(head_proc)
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        head_address = f"{connect_host}:{port}"
    node_id = _ids.new_id().hex()
    argv = ["--head", head_address, "--node-id", node_id]
    if num_cpus is not None:
        argv += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        argv += ["--num-gpus", str(num_gpus)]
    if resources:
        argv += ["--resources", json.dumps(resources)]
    if node_ip:
        argv += ["--node-ip", node_ip]
    if labels:
        argv += ["--labels", json.dumps(labels)]
    if head:
        argv.append("--head-node")
    if object_store_memory:
        argv += ["--object-store-memory", str(int(object_store_memory))]
    argv += ["--log-dir", os.path.join(session_dir, "logs")]
    argv += ["--object-spilling-directory", spill_dir or os.environ.get("SPINDLE_OBJECT_SPILLING_DIR") or session_dir]
    if one_process:
        agent_proc = head_proc = _popen([sys.executable, "-m", "spindle._embedded", *head_argv, "--agent", *argv], env,
                                        node_ip, tie_to_parent, os.path.join(session_dir, "logs", "agent.log"))
    else:
        agent_proc = _popen([sys.executable, "-m", "spindle._agent", *argv], env, None, tie_to_parent,
                            os.path.join(session_dir, "logs", "agent.log"))
    procs.append(agent_proc)
    if one_process:
        roles = [("embedded", agent_proc.pid)]
    else:
        roles = ([("head", head_proc.pid)] if head_proc is not None else []) + [("agent", agent_proc.pid)]
    _sessions.record_processes(session_dir, roles, cli=cli)
    return Pending(procs, head_proc, agent_proc, head_address, node_id, token, session_dir,
                   with_dashboard=head and dashboard_port >= 0, one_process=one_process, respawn=respawn)



def _popen(argv: list[str], env: dict[str, str], node_ip: str | None, tie_to_parent: bool,
           log: str) -> subprocess.Popen[bytes]:
    log_fd = _sessions.open_log(log)
    try:
        return subprocess.Popen(argv, env={**env, "SPINDLE_NODE_IP": node_ip} if node_ip else env,
                                stdout=subprocess.PIPE, stderr=log_fd, stdin=subprocess.DEVNULL,
                                start_new_session=not tie_to_parent)
    finally:
        os.close(log_fd)
