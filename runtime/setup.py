"""Generates the gRPC code from spindle/_proto/*.proto at build time (never hand-edited)."""

from __future__ import annotations

import pathlib
import re

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).parent
PROTO_DIR = HERE / "spindle" / "_proto"


def generate() -> None:
    from grpc_tools import protoc

    for proto in sorted(PROTO_DIR.glob("*.proto")):
        args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={PROTO_DIR}", f"--grpc_python_out={PROTO_DIR}"]
        args.append(f"--pyi_out={PROTO_DIR}")
        if protoc.main([*args, str(proto)]) != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    # grpc_tools emits absolute imports; make them package-relative.
    for grpc_file in PROTO_DIR.glob("*_pb2_grpc.py"):
        text = grpc_file.read_text()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        grpc_file.write_text(text)


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        generate()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
