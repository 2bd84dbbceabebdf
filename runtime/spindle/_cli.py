"""The `spindle` command: start a head or a node agent, show the cluster, stop what was started.

`spindle start --head` runs a head plus a node agent for its own node; `spindle start --address`
runs a node agent that joins a head (retrying until the head answers, so pods may start in any
order). Without `--block` the processes run in the background and are recorded under
/tmp/spindle/session_latest so `init(address="auto")`, `spindle status` and `spindle stop` find them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from spindle import _local_cluster
from spindle._core.api import ADDRESS_FILE, _recorded_cluster
from spindle._rpc.channels import routable_ip


def _record(info: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(ADDRESS_FILE), exist_ok=True)
    fd = os.open(ADDRESS_FILE, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)


def _load_record() -> dict[str, Any]:
    try:
        with open(ADDRESS_FILE) as f:
            data: dict[str, Any] = json.load(f)
            return data
    except (OSError, ValueError):
        return {}


def cmd_start(args: argparse.Namespace) -> int:
    if not args.head and not args.address:
        print("spindle start: pass --head to start a head, or --address HOST:PORT to join one", file=sys.stderr)
        return 2
    resources = json.loads(args.resources) if args.resources else None
    token = args.token or os.environ.get("SPINDLE_TOKEN")
    address = args.address or os.environ.get("SPINDLE_ADDRESS", "")
    node_ip = args.node_ip or os.environ.get("SPINDLE_NODE_IP") or routable_ip(None if args.head else address)
    if not args.head and not token:
        print("spindle start: no cluster token: set SPINDLE_TOKEN or pass --token (see 'spindle start --head' "
              "output or the cluster's Secret)", file=sys.stderr)
        return 2
    host = args.host or node_ip
    procs = _local_cluster.start(head=args.head, head_address=address, host=host, port=args.port,
                                 num_cpus=args.num_cpus, num_gpus=args.num_gpus, resources=resources, token=token,
                                 node_ip=node_ip, tie_to_parent=args.block)
    head_address = procs.head_address
    if args.head:
        shown = node_ip if host in ("0.0.0.0", "") else host
        head_address = f"{shown}:{head_address.rsplit(':', 1)[1]}"
    record = {"address": head_address, "token": procs.token, "pids": [p.pid for p in procs.procs],
              "session_dir": procs.session_dir, "node_id": procs.node_id, "head": args.head}
    if not args.block:
        _record(record)
    if args.head:
        print(f"Spindle head started at {head_address} (node {procs.node_id[:8]}).")
        print(f"  Join more nodes:   SPINDLE_TOKEN={procs.token} spindle start --address {head_address}")
        print(f"  Connect a driver:  SPINDLE_ADDRESS={head_address} SPINDLE_TOKEN={procs.token} python script.py")
    else:
        print(f"Spindle node agent started at {procs.agent_address}, joined {head_address}.")
    print(f"  Logs: {procs.session_dir}/logs", flush=True)
    if not args.block:
        return 0

    def stop(*_: Any) -> None:
        procs.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        for p in procs.procs:
            if p.poll() is not None:
                print(f"spindle: a cluster process exited with code {p.returncode}; stopping", file=sys.stderr)
                procs.stop()
                return 1
        time.sleep(0.5)


def cmd_stop(args: argparse.Namespace) -> int:
    rec = _load_record()
    pids = rec.get("pids", [])
    if not pids:
        print("spindle stop: nothing recorded as started on this machine")
        return 0
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        os.unlink(ADDRESS_FILE)
    except OSError:
        pass
    print(f"Stopped {len(pids)} Spindle process(es).")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import spindle

    address = args.address or os.environ.get("SPINDLE_ADDRESS")
    if not address:
        rec = _recorded_cluster()
        if rec is None:
            print("spindle status: no cluster found: pass --address or set SPINDLE_ADDRESS", file=sys.stderr)
            return 1
        address = rec[0]
    try:
        spindle.init(address=address, log_to_driver=False)
    except ConnectionError as e:
        print(f"spindle status: {e}", file=sys.stderr)
        return 1
    try:
        nodes = spindle.nodes()
        total, avail = spindle.cluster_resources(), spindle.available_resources()
    finally:
        spindle.shutdown()
    alive = [n for n in nodes if n["Alive"]]
    print(f"Cluster at {address}: {len(alive)} node(s) alive, {len(nodes) - len(alive)} dead")
    for n in nodes:
        state = "alive" if n["Alive"] else "dead"
        print(f"  {n['NodeID'][:8]}  {n['NodeManagerAddress']:<15} {state:<5}  {n['Resources']}")
    print("Resources (used / total):")
    for k in sorted(total):
        print(f"  {k}: {total[k] - avail.get(k, 0.0):g} / {total[k]:g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spindle", description="Run and inspect Spindle clusters.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start a head (--head) or a node agent joining one (--address)",
                       description="Start a head (--head) or a node agent that joins a head (--address).")
    s.add_argument("--head", action="store_true", help="start a head and a node agent for this node")
    s.add_argument("--address", default=None, help="head address HOST:PORT to join (or SPINDLE_ADDRESS)")
    s.add_argument("--port", type=int, default=6380, help="head gRPC port (default 6380)")
    s.add_argument("--num-cpus", type=float, default=None, help="CPUs this node offers (default: all)")
    s.add_argument("--num-gpus", type=float, default=None)
    s.add_argument("--resources", default=None, help='custom resources as JSON, e.g. \'{"special": 1}\'')
    s.add_argument("--node-ip", default=None, help="IP this node advertises and listens on (default: "
                   "SPINDLE_NODE_IP, else the routable one)")
    s.add_argument("--host", default=None, help="address the head listens on (default: the node IP; 0.0.0.0 = "
                   "every address, e.g. for kubectl port-forward)")
    s.add_argument("--token", default=None, help="cluster token (default: SPINDLE_TOKEN, or new for --head)")
    s.add_argument("--block", action="store_true", help="stay in the foreground (containers)")
    s.set_defaults(fn=cmd_start)
    st = sub.add_parser("status", help="show nodes and resources", description="Show nodes and resources.")
    st.add_argument("--address", default=None)
    st.set_defaults(fn=cmd_status)
    sp = sub.add_parser("stop", help="stop what 'spindle start' started here",
                        description="Stop the processes 'spindle start' started on this machine.")
    sp.set_defaults(fn=cmd_stop)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
