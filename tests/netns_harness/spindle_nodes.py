"""Starting Spindle nodes inside netns hosts, the way every multi-node test module does.

Each host runs `spindle start ... --node-ip <its IP> --block` with its own temp dir and the test's token,
its output kept beside the test's tmp dir for failure reports; the caller's SPINDLE_ADDRESS never leaks in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def start_node(token: str, host: Any, args: list[str], tmp: Path) -> Any:
    """`spindle start *args` on ``host`` (a head with ``--head``, else an agent with ``--address``)."""
    env = {**os.environ, "SPINDLE_TOKEN": token, "SPINDLE_TEMP_DIR": str(tmp / host.name)}
    env.pop("SPINDLE_ADDRESS", None)
    return host.popen([sys.executable, "-m", "spindle._cli", "start", *args, "--node-ip", host.ip, "--block"],
                      env=env, stdout=open(tmp / f"{host.name}.out", "w"), stderr=open(tmp / f"{host.name}.err", "w"))
