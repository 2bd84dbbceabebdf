"""Fixtures of the end-to-end tests: one kind cluster per test session (created by scripts/kind-up.sh,
removed by scripts/kind-down.sh even when tests fail), and on every failure the pods, events and container
logs of the namespace under test printed into the report."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .kind import ROOT, Kind, tool_env

CLUSTER = "spindle-e2e"
NAMESPACE = "spindle-e2e"
# kind-up.sh builds whatever is not cached; CI builds first (scripts/test.sh), so this is the
# cluster itself plus loading images and the helm install: 2-4 minutes here.
KIND_UP_TIMEOUT = 45 * 60
_started_docker = [False]  # this session started Spindle's dockerd, so it stops it at the end


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or load from ~/.cache) the node image and Spindle's images before any e2e test starts, so the
    long first build counts against no test's timeout; a no-op when no e2e test was selected."""
    e2e = [item for item in session.items if item.get_closest_marker("e2e")]
    if not e2e:
        return
    scripts = ["dockerd.sh start", "build-images.sh"]
    if any("kind" in getattr(item, "fixturenames", ()) for item in e2e):
        scripts.insert(1, "build-kind-node.sh")
    env = tool_env()
    status = subprocess.run([str(ROOT / "scripts/dockerd.sh"), "status"], env=env, capture_output=True, check=False)
    _started_docker[0] = status.returncode != 0
    for script in scripts:
        name, *args = script.split()
        proc = subprocess.run([str(ROOT / "scripts" / name), *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            raise pytest.UsageError(f"scripts/{script} failed before the e2e tests:\n{proc.stderr[-4000:]}")


def pytest_sessionfinish(session: pytest.Session) -> None:  # noqa: ARG001 - pytest hook signature
    if _started_docker[0]:
        subprocess.run([str(ROOT / "scripts/dockerd.sh"), "stop"], capture_output=True, check=False, timeout=120)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="package")  # down after the last e2e test, not idling through the rest of the run
def kind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kind]:
    workdir = tmp_path_factory.mktemp("kind")
    kubeconfig = workdir / "kubeconfig"
    down = [str(ROOT / "scripts/kind-down.sh"), "--name", CLUSTER, "--kubeconfig", str(kubeconfig)]
    env = tool_env()
    # A cluster left behind by an interrupted run would carry its state into this one.
    subprocess.run(down, env=env, capture_output=True, check=False, timeout=300)
    log = workdir / "kind-up.log"
    began = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run([str(ROOT / "scripts/kind-up.sh"), "--name", CLUSTER, "--kubeconfig", str(kubeconfig)],
                              stdout=out, stderr=subprocess.STDOUT, env=env, check=False, timeout=KIND_UP_TIMEOUT)
    cluster = Kind(CLUSTER, kubeconfig, env)
    try:
        if proc.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-60:])
            pytest.fail(f"scripts/kind-up.sh failed (exit {proc.returncode}); last lines of {log}:\n{tail}")
        print(f"\nkind cluster {CLUSTER} up in {time.monotonic() - began:.0f}s", file=sys.stderr)
        cluster.kubectl("create", "namespace", NAMESPACE)
        yield cluster
    finally:
        subprocess.run(down, env=env, capture_output=True, check=False, timeout=300)


@pytest.fixture(autouse=True)
def print_diagnostics_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    failed = any(getattr(getattr(request.node, f"report_{w}", None), "failed", False) for w in ("setup", "call"))
    if failed and "kind" in request.fixturenames:
        cluster: Kind = request.getfixturevalue("kind")
        sys.stderr.write(f"\n{cluster.diagnostics(NAMESPACE)}\n")

