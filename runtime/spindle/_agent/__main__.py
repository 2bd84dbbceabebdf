"""Entry point of a node agent (``python -m spindle._agent``).

The first thing it does, before importing gRPC, is start the node's warm workers (they need only
the agent's future address), so their interpreters boot while the agent boots: the first task of
a fresh cluster does not wait for a worker to start.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from spindle import _ids
from spindle._agent.worker_pool import start_worker_process
from spindle._lifeline import die_with_parent
from spindle._local_cluster import announce, service_setup
from spindle._rpc.net import check_bindable, free_port, routable_ip


def parse_resources(num_cpus: float | None, num_gpus: float | None, resources: str | dict | None) -> dict[str, float]:
    total: dict[str, float] = {"CPU": float(num_cpus if num_cpus is not None else os.cpu_count() or 1)}
    if num_gpus:
        total["GPU"] = float(num_gpus)
    extra = json.loads(resources) if isinstance(resources, str) else (resources or {})
    total.update({k: float(v) for k, v in extra.items()})
    return total


def parse_labels(text: str | None, env: str | None = None) -> dict[str, str]:
    """Node labels from ``--labels`` JSON merged over ``SPINDLE_NODE_LABELS`` (Ray's ``--labels``)."""
    labels: dict[str, str] = {}
    for source, raw in (("SPINDLE_NODE_LABELS", env), ("--labels", text)):
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not valid JSON ({e}): pass an object such as "
                             '\'{"spindle.dev/group": "cpu"}\'') from None
        if not isinstance(value, dict):
            raise ValueError(f"{source} must be a JSON object of string keys and values, got {raw!r}")
        for k, v in value.items():
            if not isinstance(v, (str, int, float, bool)):
                raise ValueError(f"{source}: label {k!r} must be a string, got {v!r}")
            labels[str(k)] = str(v)
    return labels


def _log_dir(given: str | None, node_id: str) -> str:
    from spindle import _sessions

    path = given or os.environ.get("SPINDLE_LOG_DIR") or os.path.join(_sessions.root(), f"logs-{node_id[:12]}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        sys.exit(f"spindle agent: cannot create the log directory {path} ({e}): pass --log-dir or SPINDLE_LOG_DIR")
    return os.path.abspath(path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spindle-agent", description="Run a Spindle node agent.")
    p.add_argument("--head", required=True, help="head address host:port")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--num-cpus", type=float, default=None)
    p.add_argument("--num-gpus", type=float, default=None)
    p.add_argument("--resources", default=None, help='JSON, e.g. {"special": 2}')
    p.add_argument("--node-ip", default=None)
    p.add_argument("--node-id", default=None)
    p.add_argument("--object-store-memory", type=int, default=None,
                   help="bytes of shared memory for objects (default: 30%% of memory, capped by /dev/shm)")
    p.add_argument("--object-spilling-directory", default=None,
                   help="directory under which objects above the memory budget are spilled (default: the temp dir)")
    p.add_argument("--labels", default=None,
                   help='node labels as JSON, e.g. \'{"spindle.dev/group": "cpu"}\' (merged over SPINDLE_NODE_LABELS)')
    p.add_argument("--head-node", action="store_true", help="this agent runs on the head's node (never drained)")
    p.add_argument("--log-dir", default=None,
                   help="directory of this node's log files (workers' stdout/stderr; default: SPINDLE_LOG_DIR, "
                        "else a private directory under the temp dir)")
    return p


@dataclass
class Prepared:
    """An agent between its two start-up phases: warm workers booting, gRPC not yet loaded."""
    args: argparse.Namespace
    token: str
    ip: str
    port: int
    total: dict[str, float]
    node_id: str
    labels: dict[str, str]
    log_dir: str
    num_prestart: int
    prestarted: list[Any]


def prepare(argv: list[str] | None = None, role: str = "agent") -> Prepared:
    """Parse the arguments and start the warm workers (before gRPC loads, so they boot meanwhile)."""
    args = parser().parse_args(argv)
    try:
        labels = parse_labels(args.labels, os.environ.get("SPINDLE_NODE_LABELS"))
    except ValueError as e:
        sys.exit(f"spindle agent: {e}")
    token = service_setup(role)
    ip = args.node_ip or os.environ.get("SPINDLE_NODE_IP") or routable_ip(args.head)
    total = parse_resources(args.num_cpus, args.num_gpus, args.resources)
    node_id = args.node_id or _ids.new_id().hex()
    num_prestart = max(1, int(total.get("CPU", 1)))
    try:
        check_bindable(ip)
    except OSError as e:
        sys.exit(f"spindle agent: {e}")
    port = args.port or free_port(ip)
    log_dir = _log_dir(args.log_dir, node_id)
    os.environ["SPINDLE_LOG_DIR"] = log_dir  # workers write their stdout/stderr there
    prestarted = [start_worker_process(token, f"{ip}:{port}", node_id, ip, args.head) for _ in range(num_prestart)]
    return Prepared(args, token, ip, port, total, node_id, labels, log_dir, num_prestart, prestarted)


def start(pre: Prepared) -> tuple[Any, Any]:
    """The agent and its started gRPC server."""
    from spindle._agent.agent import Agent  # gRPC and the rest load while the workers boot

    args = pre.args
    store_args: dict[str, Any] = {
        "object_store_memory": args.object_store_memory,
        "spill_dir": args.object_spilling_directory or os.environ.get("SPINDLE_OBJECT_SPILLING_DIR", ""),
        "labels": pre.labels, "is_head": args.head_node}
    agent = Agent(args.head, pre.token, pre.ip, pre.total, pre.node_id, **store_args)
    agent.log_dir = pre.log_dir
    try:
        server = agent.start(pre.port, pre.num_prestart, pre.prestarted)
    except OSError:
        if args.port:
            raise
        for _, proc in pre.prestarted:  # the free port was taken meanwhile: start over on any port
            proc.kill()
        agent = Agent(args.head, pre.token, pre.ip, pre.total, pre.node_id, **store_args)
        agent.log_dir = pre.log_dir
        server = agent.start(0, pre.num_prestart)
    return agent, server


def main(argv: list[str] | None = None) -> None:
    die_with_parent()  # an agent whose starter (driver, `spindle start --block`) is gone must not linger
    agent, server = start(prepare(argv))
    announce(f"SPINDLE_AGENT_ADDRESS={agent.address}")

    def stop(*_: Any) -> None:
        agent.shutdown()
        server.stop(0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
