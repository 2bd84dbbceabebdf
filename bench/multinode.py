"""Two-node figures in network namespaces (``python -m bench --multinode``); not written yet."""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    raise SystemExit("--multinode is not implemented yet")
