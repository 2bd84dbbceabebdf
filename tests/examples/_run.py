"""Running an example program the way a user would, and reading numbers out of its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.netns_harness.hosts import Host

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT_S = 180


def run_example(
    name: str, *args: str, host: Host | None = None, env: dict[str, str] | None = None, timeout: float = TIMEOUT_S
) -> str:
    """Run examples/<name> in a fresh interpreter and return its stdout; fail on a non-zero exit.

    Without `env`, the example starts its own embedded cluster (SPINDLE_ADDRESS is removed so it
    never joins a cluster another test left running). With `host`, it runs in that netns host.
    """
    full_env = dict(os.environ)
    full_env.pop("SPINDLE_ADDRESS", None)
    full_env.update(env or {})
    argv = [sys.executable, str(EXAMPLES / name), *args]
    options: dict[str, Any] = {
        "capture_output": True,
        "text": True,
        "timeout": timeout,
        "env": full_env,
        "cwd": EXAMPLES.parent,
    }
    proc = host.run(argv, **options) if host else subprocess.run(argv, check=False, **options)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return str(proc.stdout)


def grab(pattern: str, text: str) -> str:
    """The first group of `pattern` in `text`, failing with the whole output when absent."""
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in output:\n{text}"
    return match.group(1)
