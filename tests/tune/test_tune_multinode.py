"""Tune on a two-node cluster: a head with no CPUs and two node agents with one CPU each, each in its
own network namespace; the driver runs outside them. Trials run on both nodes at once, checkpoints
travel from the nodes to the driver, and a trial whose worker is killed resumes on whichever node has
room, from the checkpoint the driver kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle import tune
from tests.netns_harness.spindle_nodes import joined_cluster

pytestmark = pytest.mark.multinode

TOKEN = "tune-multinode-token"


@pytest.fixture(scope="module")
def two_nodes(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tmp = tmp_path_factory.mktemp("tune-multinode")
    head, a, b = netns_hosts_module(3)
    with joined_cluster(TOKEN, head, [(a, ["--num-cpus", "1"]), (b, ["--num-cpus", "1"])], tmp):
        yield


@spindle.remote
class Meeting:
    """Trials wait here until two are in at once: with one CPU per node they must be on both nodes."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    def enter(self) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        return self.peak

    def leave(self) -> None:
        self.now -= 1

    def peak_seen(self) -> int:
        return self.peak


def _trainable(config: dict[str, Any]) -> None:
    node = spindle.get_runtime_context().get_node_id()
    meeting = spindle.get_actor("tune-meeting")
    spindle.get(meeting.enter.remote())
    deadline = time.monotonic() + 300  # generous: a second trial's worker can take long to start on a busy machine
    while spindle.get(meeting.peak_seen.remote()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    spindle.get(meeting.leave.remote())
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        start = json.loads(Path(checkpoint.path, "state.json").read_text())["step"] + 1
    for step in range(start, 4):
        directory = Path(f"/tmp/tune-mn-{os.getpid()}-{step}")  # on the trial's node, not the driver's
        directory.mkdir(exist_ok=True)
        (directory / "state.json").write_text(json.dumps({"step": step}))
        tune.report({"step": step, "node": node, "x": config["x"]}, checkpoint=tune.Checkpoint.from_directory(directory))
        shutil.rmtree(directory)  # report() has already copied it
        if config["x"] == 0 and step == 1 and start == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def test_trials_run_on_both_nodes_and_a_killed_one_resumes_from_its_checkpoint(two_nodes: None, tmp_path: Path) -> None:
    meeting = Meeting.options(name="tune-meeting", num_cpus=0).remote()
    analysis = tune.run(_trainable, config={"x": tune.grid_search([0, 1, 2, 3])}, metric="step", mode="max",
                        max_failures=1, storage_path=str(tmp_path), name="two-nodes", verbose=0)
    spindle.kill(meeting)
    trials = sorted(analysis.trials, key=lambda t: t.config["x"])
    assert [t.status for t in trials] == ["TERMINATED"] * 4
    assert len({r["node"] for t in trials for r in t.metric_history}) == 2
    assert [r["step"] for r in trials[0].metric_history] == [0, 1, 2, 3] and trials[0].num_failures == 1
    for t in trials:
        assert t.checkpoint is not None and t.checkpoint.path.startswith(str(tmp_path))
        assert json.loads(Path(t.checkpoint.path, "state.json").read_text()) == {"step": 3}
