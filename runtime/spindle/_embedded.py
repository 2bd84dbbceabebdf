"""The head and the node agent of an embedded cluster in one process (``init()`` with no address).

    python -m spindle._embedded <head arguments> --agent <agent arguments>

Every Spindle process loads gRPC and protobuf (~27 MiB of RSS each, mostly the gRPC core library's pages),
so an idle embedded cluster's memory is mostly a count of processes; running the head and the agent of the
one local node in one interpreter saves a whole process (issue 14's idle-memory goal). They keep their own
gRPC servers, ports and threads, and talk to each other over loopback exactly as when apart, so nothing else
changes. ``spindle start`` keeps them separate: there a head may restart while its node's agent lives on.
The order matters: the agent's warm workers start first (before gRPC loads, as in the agent's own entry),
then the head serves, then the agent registers with it; one announcement carries both processes' markers.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from spindle._lifeline import die_with_parent


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--agent" not in argv:
        raise SystemExit("usage: python -m spindle._embedded <head arguments> --agent <agent arguments>")
    i = argv.index("--agent")
    return argv[:i], argv[i + 1:]


def main(argv: list[str] | None = None) -> None:
    die_with_parent()  # a cluster whose driver is gone must not linger
    head_argv, agent_argv = split(sys.argv[1:] if argv is None else argv)
    from spindle._agent import __main__ as agent_main

    pre = agent_main.prepare(agent_argv, role="head+agent")
    from spindle._head import server as head_server
    from spindle._local_cluster import announce

    head = head_server.start(head_argv, role="head+agent")
    agent, agent_server = agent_main.start(pre)
    # this node lives exactly as long as the head's own process: heartbeats it misses are the process being
    # starved (e.g. 1,000 actors on 2 cores), never its death
    head.state.co_located.add(agent.node_id)

    def stop(*_: Any) -> None:
        for stopper in head.stoppers:
            stopper()
        agent.shutdown()
        agent_server.stop(0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    announce("\n".join([*head.lines, f"SPINDLE_AGENT_ADDRESS={agent.address}"]))
    if head.provider is not None:
        head.provider.start()
    head.server.wait_for_termination()


if __name__ == "__main__":
    main()
