"""The autoscaling flags of `spindle start`: bad input is refused before anything starts, naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def start(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINDLE_TOKEN": "t" * 32}
    return subprocess.run([sys.executable, "-m", "spindle._cli", "start", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "127.0.0.1:1", "--autoscale-local", "2"], "--autoscale-local is for the head (--head)"),
    (["--head", "--autoscale-local", "2", "--autoscale-node-resources", "{cpu"], "is not JSON"),
    (["--head", "--autoscale-local", "2", "--autoscale-node-resources", '{"CPU": -1}'], "non-negative numbers"),
    (["--head", "--autoscale-local", "1", "--autoscale-min", "2"], "need 0 <= --autoscale-min <= --autoscale-local"),
    (["--head", "--labels", "[1]"], "--labels must be a JSON object"),
    (["--head", "--labels", '{"zone": {"a": 1}}'], "label 'zone' must be a string"),
    (["--head", "--upscaling-mode", "Fast"], "invalid choice: 'Fast'"),
])
def test_bad_autoscaling_flags_are_refused_with_the_fix(args: list[str], message: str) -> None:
    out = start(*args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_start_help_lists_the_autoscaling_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "spindle._cli", "start", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    for flag in ("--labels", "--autoscale-local", "--autoscale-min", "--autoscale-node-resources",
                 "--idle-timeout-s", "--upscaling-mode"):
        assert flag in out.stdout
