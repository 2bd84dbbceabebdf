"""The benchmark suite's smoke mode keeps running, so the real figures can always be produced.

Smoke mode runs every workload once against Spindle at tiny sizes, with no Ray and no thresholds; what
it checks is that the harness and the workloads still work against the current runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.spec import METRICS, WORKLOADS, Better

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_run_reports_a_value_for_every_metric_and_writes_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--spindle-python",
            sys.executable,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert out.exists(), proc.stderr[-3000:]
    data = json.loads(out.read_text())
    failed = {r["workload"]: r["error"] for r in data["runs"] if not r["ok"]}
    assert not failed, f"{failed}\n{proc.stderr[-3000:]}"
    summary = {row["metric"]: row for row in data["summary"]}
    assert set(summary) == {m.name for w in WORKLOADS for m in w.metrics}
    for name, row in summary.items():
        value = row["spindle"]
        if METRICS[name].better is Better.BOOL:
            assert isinstance(value, bool), name
        else:
            assert isinstance(value, float) and value > 0, (name, value)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ratio" in proc.stdout


def test_help_describes_the_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--smoke" in proc.stdout and "--only" in proc.stdout
