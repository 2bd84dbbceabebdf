"""pytest fixtures for tests against a real kube-apiserver (``k8s`` marker).

``kube_api`` (session) starts etcd, kube-apiserver and kube-controller-manager once per session and
stops them at the end; ``kube_namespace`` gives each test a fresh namespace whose ``default``
ServiceAccount already exists. Tests using them are marked ``k8s`` automatically. When the binaries
are not built the fixture fails (it does not skip) and names ``scripts/build-k8s.sh``: a k8s test that
silently does not run is worse than a red one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kube_harness import (
    BinariesMissing,
    KubeAPI,
    StartupError,
    running_cluster,
    wait_for,
)

DEFAULT_SA_TIMEOUT = 60.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "k8s: runs against a real kube-apiserver (tests/kube_harness)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kube_api" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    root = tmp_path_factory.mktemp("kube")
    with ExitStack() as stack:
        try:
            api = stack.enter_context(running_cluster(root))
        except (BinariesMissing, StartupError) as exc:
            failure = str(exc)  # failed outside the except block: the message is the whole story
        else:
            failure = ""
        if failure:
            pytest.fail(failure, pytrace=False)
        yield api


def _wait_for_default_service_account(core: client.CoreV1Api, namespace: str) -> None:
    # The ServiceAccount admission plugin rejects pods until the serviceaccount controller has
    # created "default" in the namespace.
    def exists() -> bool:
        try:
            core.read_namespaced_service_account("default", namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False
        return True

    wait_for(exists, DEFAULT_SA_TIMEOUT, f"the default ServiceAccount in {namespace}")


@pytest.fixture
def kube_namespace(kube_api: KubeAPI) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    with kube_api.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        _wait_for_default_service_account(core, name)
        yield name
        core.delete_namespace(name)
