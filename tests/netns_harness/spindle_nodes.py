"""Starting Spindle nodes inside netns hosts, the way every multi-node test module does.

Each host runs `spindle start ... --node-ip <its IP> --block` with its own temp dir and the test's token,
its output kept beside the test's tmp dir for failure reports; the caller's SPINDLE_ADDRESS never leaks in.
``joined_cluster`` is the usual fixture body: a head, agents, and this process as the driver once all joined.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def start_node(token: str, host: Any, args: list[str], tmp: Path, env: dict[str, str] | None = None) -> Any:
    """`spindle start *args` on ``host`` (a head with ``--head``, else an agent with ``--address``), with
    ``env`` added to this process's environment."""
    env = {**os.environ, **(env or {}), "SPINDLE_TOKEN": token, "SPINDLE_TEMP_DIR": str(tmp / host.name)}
    env.pop("SPINDLE_ADDRESS", None)
    return host.popen([sys.executable, "-m", "spindle._cli", "start", *args, "--node-ip", host.ip, "--block"],
                      env=env, stdout=open(tmp / f"{host.name}.out", "w"), stderr=open(tmp / f"{host.name}.err", "w"))


@contextlib.contextmanager
def joined_cluster(token: str, head: Any, agents: list[tuple[Any, list[str]]], tmp: Path, port: int = 6380,
                   timeout: float = 180, agent_env: dict[str, dict[str, str]] | None = None) -> Iterator[dict[str, str]]:
    """A head with no CPUs on ``head`` and an agent on each ``(host, extra args)`` of ``agents``, with this
    process connected as their driver once every node is alive; yields each node's ID by its IP.
    ``agent_env`` adds environment variables to the agents of the hosts it names (by host name)."""
    import spindle

    start_node(token, head, ["--head", "--port", str(port), "--num-cpus", "0"], tmp)
    address = f"{head.ip}:{port}"
    for host, args in agents:
        start_node(token, host, ["--address", address, *args], tmp, (agent_env or {}).get(host.name))
    before = os.environ.get("SPINDLE_TOKEN")
    os.environ["SPINDLE_TOKEN"] = token
    try:
        deadline = time.monotonic() + timeout
        while True:  # the head may still be starting (a Python process in a namespace on a busy machine)
            try:
                spindle.init(address=address)
                break
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        delay = 0.05
        while len(alive := [n for n in spindle.nodes() if n["Alive"]]) < 1 + len(agents):
            assert time.monotonic() < deadline, (f"{len(alive)} of {1 + len(agents)} nodes joined the head within "
                                                 f"{timeout:.0f} s; their output is in {tmp}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        yield {n["NodeManagerAddress"]: n["NodeID"] for n in alive}
    finally:
        spindle.shutdown()
        if before is None:
            os.environ.pop("SPINDLE_TOKEN", None)
        else:
            os.environ["SPINDLE_TOKEN"] = before
