"""The dashboard's static files: the vendored uPlot is exactly the pinned npm release, every page asset
exists, and the wheel's package data takes them all (pip install needs no Node.js and no network)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path

import tomllib

import spindle
from spindle._head.dashboard.routes import STATIC_DIR

REPO = Path(__file__).resolve().parents[2]
VENDOR = Path(STATIC_DIR) / "vendor" / "uplot"


def test_the_vendored_uplot_files_are_the_pinned_release_byte_for_byte() -> None:
    pin = json.loads((VENDOR / "VENDORED.json").read_text())
    assert pin["name"] == "uplot" and pin["version"] == "1.6.32"
    assert pin["integrity"].startswith("sha512-")
    for name, digest in pin["sha256"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} differs from uplot@{pin['version']}"
    head = (VENDOR / "uPlot.esm.js").read_text()[:400]
    assert f"(v{pin['version']})" in head
    assert "MIT License" in (VENDOR / "LICENSE").read_text()
    assert "export { uPlot as default }" in (VENDOR / "uPlot.esm.js").read_text()[-200:]


def test_every_asset_the_pages_load_exists_and_nothing_comes_from_the_network() -> None:
    static = Path(STATIC_DIR)
    html = (static / "index.html").read_text()
    for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        assert (static / ref.removeprefix("/static/")).is_file(), ref
    for js in static.rglob("*.js"):
        text = js.read_text()
        assert "http://" not in text and "https://" not in text or js.parent == VENDOR, f"{js} loads from the network"
        for ref in re.findall(r'(?:import|from)\s*\(?\s*"(\.[^"]+)"', text):
            assert (js.parent / ref).resolve().is_file(), f"{js.name} imports missing {ref}"


def test_the_wheel_package_data_covers_every_dashboard_file() -> None:
    conf = tomllib.loads((REPO / "runtime" / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["spindle"]
    pkg = os.path.dirname(spindle.__file__)
    covered = {os.path.normpath(p) for pat in patterns for p in glob.glob(os.path.join(pkg, pat), recursive=True)
               if os.path.isfile(p)}
    files = {os.path.normpath(str(p)) for p in Path(STATIC_DIR).rglob("*") if p.is_file()}
    assert files and files <= covered, sorted(files - covered)
