"""The two-node benchmark mode keeps working: a Spindle head and node in separate network namespaces.

Started the way deployments start them (``spindle start --head`` / ``--address``), with tiny sizes and
no thresholds; it checks the harness and that remote tasks, actor calls and transfers all complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.spec import MULTINODE_WORKLOADS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.multinode
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_multinode_smoke_reports_every_remote_metric(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("--multinode needs root to create network namespaces", pytrace=False)
    out = tmp_path / "multinode.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--multinode",
            "--smoke",
            "--spindle-python",
            sys.executable,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=550,
        check=False,
    )
    assert out.exists(), proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert all(r["ok"] for r in data["runs"]), proc.stderr[-3000:]
    values = {row["metric"]: row["spindle"] for row in data["summary"]}
    expected = {m.name for w in MULTINODE_WORKLOADS for m in w.metrics}
    assert set(values) == expected
    assert all(isinstance(v, float) and v > 0 for v in values.values()), values
