"""The `spindle` command: start a head or a node agent, show the cluster, stop what was started.

`spindle start --head` runs a head plus a node agent for its own node; `spindle start --address`
runs a node agent that joins a head (retrying until the head answers, so pods may start in any
order). Without `--block` the processes run in the background. Each start is a session under the
user's private temp dir (see _sessions), and the latest address is recorded in its session_latest/
so `init(address="auto")` and `spindle status` find it; `spindle stop` stops every started session.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from spindle import _local_cluster, _sessions, _stop
from spindle._agent.__main__ import parse_labels
from spindle._agent.store_budget import fmt_bytes
from spindle._core.api import _recorded_cluster
from spindle._rpc.net import routable_ip
from spindle.autoscaler import local as autoscale_local


def cmd_start(args: argparse.Namespace) -> int:
    if not args.head and not args.address:
        print("spindle start: pass --head to start a head, or --address HOST:PORT to join one", file=sys.stderr)
        return 2
    resources = json.loads(args.resources) if args.resources else None
    try:
        labels = parse_labels(args.labels)
    except ValueError as e:
        print(f"spindle start: {e}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("SPINDLE_TOKEN")
    address = args.address or os.environ.get("SPINDLE_ADDRESS", "")
    node_ip = args.node_ip or os.environ.get("SPINDLE_NODE_IP") or routable_ip(None if args.head else address)
    if args.storage and not args.head:
        print("spindle start: --storage is for the head (--head)", file=sys.stderr)
        return 2
    if not args.head and not token:
        print("spindle start: no cluster token: set SPINDLE_TOKEN or pass --token (see 'spindle start --head' "
              "output or the cluster's Secret)", file=sys.stderr)
        return 2
    host = args.host or node_ip
    head_args = ["--storage", args.storage] if args.storage else []
    if args.metrics_port is not None:
        head_args += ["--metrics-port", str(args.metrics_port)]
    if args.autoscale_local is not None:
        if not args.head:
            print("spindle start: --autoscale-local is for the head (--head)", file=sys.stderr)
            return 2
        try:
            autoscale_local.parse_node_resources(args.autoscale_node_resources)
        except ValueError as e:
            print(f"spindle start: {e}", file=sys.stderr)
            return 2
        if not 0 <= args.autoscale_min <= args.autoscale_local:
            print("spindle start: need 0 <= --autoscale-min <= --autoscale-local", file=sys.stderr)
            return 2
        head_args += ["--autoscale-local", str(args.autoscale_local), "--autoscale-min", str(args.autoscale_min),
                      "--autoscale-node-resources", args.autoscale_node_resources,
                      "--idle-timeout-s", str(args.idle_timeout_s), "--upscaling-mode", args.upscaling_mode]
    try:
        procs = _local_cluster.start(head=args.head, head_address=address, host=host, port=args.port,
                                     num_cpus=args.num_cpus, num_gpus=args.num_gpus, resources=resources,
                                     token=token, node_ip=node_ip, tie_to_parent=args.block, cli=True,
                                     object_store_memory=args.object_store_memory,
                                     spill_dir=args.object_spilling_directory, labels=labels,
                                     head_args=head_args or None,

                                     dashboard_port=-1 if args.include_dashboard == "false" else (args.dashboard_port or 8265),
                                     dashboard_port_fallback=args.dashboard_port is None)
    except (_sessions.UnsafeTempDirError, RuntimeError, OSError) as e:
        print(f"spindle start: {e}", file=sys.stderr)
        return 1
    head_address = procs.head_address
    if args.head:
        shown = node_ip if host in ("0.0.0.0", "") else host
        head_address = f"{shown}:{head_address.rsplit(':', 1)[1]}"
    record = {"address": head_address, "token": procs.token, "session_dir": procs.session_dir, "node_id": procs.node_id, "head": args.head}
    dashboard = ""
    if args.head and procs.dashboard_address:
        dashboard = f"http://{shown}:{procs.dashboard_address.rsplit(':', 1)[1]}"
        record["dashboard_address"] = dashboard
    if not args.block:
        _sessions.write_private_json(_sessions.address_file(), record)
    if args.head:
        print(f"Spindle head started at {head_address} (node {procs.node_id[:8]}).")
        print(f"  Join more nodes:   SPINDLE_TOKEN={procs.token} spindle start --address {head_address}")
        print(f"  Connect a driver:  SPINDLE_ADDRESS={head_address} SPINDLE_TOKEN={procs.token} python script.py")
        if dashboard:
            print(f"  Submit a job:      SPINDLE_TOKEN={procs.token} spindle job submit --address {dashboard} "
                  "-- python script.py")
            print(f"  Dashboard:         {dashboard}/#token={procs.token} (the link signs the browser in)")
            print(f"  Inspect it:        spindle list tasks|actors|nodes|workers --address {dashboard}")
        if procs.metrics_address:
            print(f"  Metrics:           http://{shown}:{procs.metrics_address.rsplit(':', 1)[1]}/metrics "
                  "(Authorization: Bearer <token>)")
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
                if p.returncode in (0, -signal.SIGTERM, -signal.SIGKILL):  # 'spindle stop' or a clean exit
                    procs.stop()
                    return 0
                print(f"spindle: a cluster process exited with code {p.returncode}; stopping", file=sys.stderr)
                procs.stop()
                return 1
        time.sleep(0.5)


def cmd_stop(args: argparse.Namespace) -> int:
    try:
        base = _sessions.root()
    except _sessions.UnsafeTempDirError as e:
        print(f"spindle stop: {e}", file=sys.stderr)
        return 1
    stopped = _stop.stop(base, force=args.force, grace_s=args.grace_period,
                         say=lambda line: print(f"spindle stop: {line}", flush=True))
    if not stopped:
        print("spindle stop: no Spindle process started by 'spindle start' is running for this user "
              f"(temp dir {base})")
        return 0
    for t in stopped:
        print(f"  stopped {t.describe()}")
    print(f"Stopped {len(stopped)} Spindle process(es).")
    try:
        record = _sessions.read_trusted_json(_sessions.address_file())
        if isinstance(record, dict) and record.get("session_dir") in {t.session for t in stopped}:
            os.unlink(_sessions.address_file())
    except (OSError, _sessions.UnsafeTempDirError):
        pass
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
        state = ("draining" if n.get("Draining") else "alive") if n["Alive"] else "dead"
        why = f"  ({n['DeathReason']})" if n.get("DeathReason") else ""
        print(f"  {n['NodeID'][:8]}  {n['NodeManagerAddress']:<15} {state:<8}  {n['Resources']}{why}")
    print("Resources (used / total):")
    for k in sorted(total):
        used, whole = total[k] - avail.get(k, 0.0), total[k]
        if k.endswith("memory"):
            print(f"  {k}: {fmt_bytes(int(used))} / {fmt_bytes(int(whole))}")
        else:
            print(f"  {k}: {used:g} / {whole:g}")
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
    s.add_argument("--labels", default=None, metavar="JSON",
                   help='labels of this node as a JSON object, e.g. \'{"spindle.dev/group": "gpu"}\' (Ray\'s '
                        "--labels; merged over SPINDLE_NODE_LABELS); shown by nodes() and the autoscaler")
    s.add_argument("--object-store-memory", type=int, default=None, metavar="BYTES",
                   help="shared memory for objects on this node (default: 30%% of memory, capped by /dev/shm); "
                        "objects above it spill to disk")
    s.add_argument("--object-spilling-directory", default=None, metavar="DIR",
                   help="directory under which spilled objects go (default: the session directory, or "
                        "SPINDLE_OBJECT_SPILLING_DIR)")
    s.add_argument("--token", default=None, help="cluster token (default: SPINDLE_TOKEN, or new for --head)")
    s.add_argument("--storage", default=None, help="head only: SQLite file that keeps the head's tables (actors, "
                   "named actors, jobs, KV) across head restarts, e.g. on the head pod's volume (default: "
                   "SPINDLE_HEAD_STORAGE; none = in memory)")
    s.add_argument("--dashboard-port", type=int, default=None,
                   help="port of the head's HTTP job API (default 8265, or a free port if 8265 is taken; "
                        "an explicit port must be free)")
    s.add_argument("--metrics-port", type=int, default=None,
                   help="head only: port of the Prometheus metrics (default 8080, or a free port if 8080 is taken; "
                        "-1 = none)")
    s.add_argument("--include-dashboard", choices=("true", "false"), default="true",
                   help="start the HTTP job API on the head (default true)")
    s.add_argument("--block", action="store_true", help="stay in the foreground (containers)")
    autoscale_local.add_head_args(s)
    s.set_defaults(fn=cmd_start)
    st = sub.add_parser("status", help="show nodes and resources", description="Show nodes and resources.")
    st.add_argument("--address", default=None)
    st.set_defaults(fn=cmd_status)
    sp = sub.add_parser("stop", help="stop what 'spindle start' started here",
                        description="Stop every process 'spindle start' started on this machine for this user: "
                                    "SIGTERM, then SIGKILL after the grace period.")
    sp.add_argument("--force", action="store_true", help="SIGKILL at once instead of SIGTERM first")
    sp.add_argument("--grace-period", type=float, default=10.0,
                    help="seconds to wait after SIGTERM before SIGKILL (default 10)")
    sp.set_defaults(fn=cmd_stop)
    from spindle._cli_job import add_job_parser
    from spindle._cli_state import add_state_parsers

    add_job_parser(sub)
    add_state_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
