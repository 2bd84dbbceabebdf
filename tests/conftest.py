"""Shared pytest setup: plugins for the real kube-apiserver and the network-namespace hosts."""

import importlib.util

pytest_plugins = [p for p in ("tests.plugins.kube", "tests.plugins.netns") if importlib.util.find_spec(p)]
