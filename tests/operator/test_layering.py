"""The operator and the runtime only meet through public interfaces (docs/CONVENTIONS.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: Path) -> set[tuple[str, str]]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


# The runtime's public client modules the operator may use (policy: pure; job_submission: the job API client).
OPERATOR_MAY_IMPORT = {"spindle.autoscaler.policy", "spindle.job_submission"}  # job_submission: HTTPMode


def test_the_operator_imports_only_the_runtimes_public_client_modules():
    used = {
        (f, m)
        for f, m in imported_modules(ROOT / "operator/spindle_operator")
        if m.startswith("spindle.") or m == "spindle"
    }
    assert {(f, m) for f, m in used if m not in OPERATOR_MAY_IMPORT} == set()
    assert {m for _, m in used} <= OPERATOR_MAY_IMPORT


def test_the_runtime_never_imports_kopf_or_kubernetes():
    bad = {
        (f, m)
        for f, m in imported_modules(ROOT / "runtime")
        if m.split(".")[0] in ("kopf", "kubernetes", "spindle_operator")
    }
    assert bad == set()


def test_the_operator_package_exports_a_small_explicit_api():
    import spindle_operator

    assert sorted(spindle_operator.__all__) == [
        "NodeSettings",
        "OperatorSettings",
        "Ports",
        "ReconcileSettings",
        "WatchSettings",
        "__version__",
        "build_crd",
        "operate",
        "register",
    ]
