"""A program that never calls init() gets an embedded cluster on first get/put/remote, as with Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "SPINDLE_ADDRESS": "", "RAY_ADDRESS": "", **env})


def test_remote_put_and_get_without_init_start_a_local_cluster() -> None:
    proc = _run("""
        import spindle
        assert not spindle.is_initialized()

        @spindle.remote
        def double(x):
            return 2 * x

        ref = double.remote(21)
        assert spindle.is_initialized()
        print(spindle.get(ref), spindle.get(spindle.put("v")))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42", "v"]


def test_auto_connect_can_be_turned_off_as_in_ray() -> None:
    proc = _run("""
        import spindle
        try:
            spindle.put(1)
        except RuntimeError as e:
            print("refused:", e)
    """, RAY_ENABLE_AUTO_CONNECT="0")
    assert proc.returncode == 0, proc.stderr
    assert "refused: spindle is not initialized" in proc.stdout
