"""`python -m bench --all` pastes one report from its three parts, and says which part left no result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import full, report
from bench.report import Run, summarize
from bench.run import main as bench_main


def _local_json(path: Path, mode: str) -> None:
    runs = [Run("init", "spindle", 0, True, 1.0, 100.0, {"init_seconds": 1.0}),
            Run("init", "ray", 0, True, 1.0, 100.0, {"init_seconds": 5.0})]
    meta = {"date": "2026-11-29T19:00:00+00:00", "git_commit": "abc1234", "reps": 1, "mode": mode,
            "machine": {"hostname": "vm", "cpu": "cpu", "cpus": 2, "memory_gib": 23.5}}
    report.write(path, report.record(meta, runs, summarize(runs, ["init_seconds"])))


def test_the_report_has_each_parts_table_under_its_title(tmp_path: Path) -> None:
    parts = full.paths("20261129T190000Z", tmp_path)
    _local_json(parts["local"], "full")
    _local_json(parts["multinode"], "multinode")
    parts["k8s"].write_text(json.dumps({"date": "2026-11-29T20:00:00+00:00", "reps": 2, "samples": {
        "apply to Ready cluster, 2 workers (s)": {"spindle": [10.0, 12.0], "kuberay": [40.0, 44.0]}}}))
    text = full.markdown(parts)
    assert text.index("**One machine**") < text.index("**Two nodes**") < text.index("**Kubernetes**")
    assert text.count("| init_seconds | s | 1 | 5 | 5.00x |") == 2
    assert "| apply to Ready cluster, 2 workers (s) | 11.0 | 42.0 | 3.82x |" in text


def test_a_part_that_wrote_nothing_is_named_as_missing(tmp_path: Path) -> None:
    parts = full.paths("20261129T190000Z", tmp_path)
    _local_json(parts["local"], "full")
    text = full.markdown(parts)
    assert "**multinode**: no result" in text and "**k8s**: no result" in text
    assert "**One machine**" in text


def test_all_refuses_smoke_mode_with_a_pointer_to_the_ci_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--all", "--smoke"]) == 2
    assert "without --all" in capsys.readouterr().err
