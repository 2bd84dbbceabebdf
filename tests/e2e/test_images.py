"""Spindle's images as built by scripts/build-images.sh: non-root, labelled with version and commit, no
secret inside, and a PID 1 that passes SIGTERM to `spindle start --block`, which stops its processes and
exits well within a pod's default 30 s grace period."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .kind import ROOT, tool_env, wait_for

pytestmark = pytest.mark.e2e

IMAGES = {"spindle:0.1.0": "1000:1000", "spindle-operator:0.1.0": "65532:65532"}


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=tool_env(), timeout=timeout,
                          check=check)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_image_runs_as_its_non_root_user_with_version_and_commit_labels_and_no_secret(image: str) -> None:
    [info] = json.loads(docker("image", "inspect", image).stdout)
    config = info["Config"]
    assert config["User"] == IMAGES[image]
    assert config["Entrypoint"][0] == "/usr/bin/tini"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    assert len(labels["org.opencontainers.image.revision"].removesuffix("-dirty")) == len(commit) == 40
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert not any("TOKEN" in text for text in [*config.get("Env", []), history])
    assert docker("run", "--rm", image, "id", "-u").stdout.strip() == IMAGES[image].split(":")[0]
    # The user has a passwd entry: getpass.getuser() (kopf's peering identity, among others) works.
    named = docker("run", "--rm", image, "python", "-c", "import getpass; print(getpass.getuser())")
    assert named.stdout.strip() in {"spindle", "spindle-operator"}


def test_sigterm_stops_a_blocking_head_in_the_runtime_image_promptly_and_cleanly() -> None:
    name = f"spindle-sigterm-{int(time.time())}"
    docker("run", "-d", "--name", name, "spindle:0.1.0", "spindle", "start", "--head", "--num-cpus", "1", "--block")
    try:
        wait_for(lambda: "Spindle head started" in docker("logs", name).stdout, "the head to start", 120,
                 describe=lambda: docker("logs", name, check=False).stderr)
        began = time.monotonic()
        docker("stop", "--time", "25", name, timeout=60)  # SIGTERM, then SIGKILL after 25 s
        stopped_in = time.monotonic() - began
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, docker("logs", name).stderr
        assert stopped_in < 20
    finally:
        docker("rm", "-f", name, check=False)
