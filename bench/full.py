"""``python -m bench --all``: the whole comparison as one run, for the table in bench/README.md.

The three harnesses measure different things on different set-ups (one machine; two network namespaces; a kind
cluster), so each keeps its own method and JSON. What a reader needs is that they ran back to back on the same
commit and machine, and one report to paste: this runs them in sequence with a shared time stamp
(``bench/results/<stamp>.json``, ``<stamp>-multinode.json``, ``k8s-<stamp>.json``) and prints the three
Markdown tables together, even when one part failed (its failure is reported and the exit code says so).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
from pathlib import Path

from bench import report, run


def paths(stamp: str, results: Path) -> dict[str, Path]:
    return {
        "local": results / f"{stamp}.json",
        "multinode": results / f"{stamp}-multinode.json",
        "k8s": results / f"k8s-{stamp}.json",
    }


def markdown(parts: dict[str, Path]) -> str:
    """The report for bench/README.md from the parts' JSON files (a part that wrote nothing is named as missing)."""
    from bench.k8s.run import Samples, table

    out: list[str] = []
    for name, path in parts.items():
        if not path.exists():
            out.append(f"**{name}**: no result (see the log above)\n")
            continue
        data = json.loads(path.read_text())
        if name == "k8s":
            out.append(f"**Kubernetes** ({data['date']}, {data['reps']} repetitions, medians)\n")
            out.append(table(Samples(values=data["samples"])) + "\n")
            continue
        rows = [report.Row(**r) for r in data["summary"]]
        title = "Two nodes" if name == "multinode" else "One machine"
        out.append(f"**{title}**: {report.heading(data['meta'])}\n")
        out.append(report.table(rows, markdown=True) + "\n")
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    if args.smoke:
        run.log("--all is the full comparison; for CI use --smoke without --all")
        return 2
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    parts = paths(stamp, args.out or run.ROOT / "bench/results")  # with --all, --out names a directory
    codes: dict[str, int] = {}
    for name, path in parts.items():
        run.log(f"--all: part {name} -> {path}")
        part_args = copy.copy(args)
        part_args.out = path
        try:
            if name == "local":
                codes[name] = run.run_local(part_args)
            elif name == "multinode":
                from bench import multinode

                codes[name] = multinode.main(part_args)
            else:
                from bench.k8s import run as k8s

                codes[name] = k8s.main(reps=args.reps or 3, keep=args.keep_cluster, out=path)
        except Exception as e:  # one part's failure must not lose the others' report
            run.log(f"--all: part {name} failed: {type(e).__name__}: {e}")
            codes[name] = 1
    print("\n" + markdown(parts))
    failed = [n for n, c in codes.items() if c != 0]
    if failed:
        print(f"parts with failures: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
