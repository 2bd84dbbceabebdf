"""``spindle.util.log_once``: true once per key, silenced globally on request (a process-local helper)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    """In a fresh interpreter: the switches are process-wide and one-way."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_log_once_is_true_only_the_first_time_for_each_key() -> None:
    assert _run("""
        from spindle.util import log_once
        print([log_once("a"), log_once("a"), log_once("b"), log_once("a")])
    """) == "[True, False, True, False]"


def test_disable_log_once_globally_silences_every_key() -> None:
    assert _run("""
        from spindle.util import disable_log_once_globally, log_once
        disable_log_once_globally()
        print([log_once("a"), log_once("b")])
    """) == "[False, False]"


def test_periodic_logging_lets_a_key_through_again_after_the_period() -> None:
    assert _run("""
        from spindle.util import debug
        debug.enable_periodic_logging()
        first = [debug.log_once("a"), debug.log_once("a")]
        debug._last_reset -= debug.PERIOD_S + 1  # as if a minute had passed
        print(first + [debug.log_once("a")])
    """) == "[True, False, True]"
