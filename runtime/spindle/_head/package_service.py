"""The head's gRPC side of runtime_env packages: drivers put ``working_dir``/``py_modules`` zips, node
agents get them. The same store holds what the job client uploads over HTTP, so a package is kept once
however it arrived (names are content hashes)."""

from __future__ import annotations

import os

import grpc

from spindle import _sessions
from spindle._packages import PackageError, PackageStore
from spindle._proto import pb


def default_store(session: str) -> PackageStore:
    """Where a head without the job API keeps packages (the job API's store uses the same directory)."""
    return PackageStore(os.path.join(_sessions.private_dir(os.path.join(_sessions.root(), f"head_{session}")),
                                     "packages"))


def put(store: PackageStore, req: pb.PackageRequest, context: grpc.ServicerContext) -> pb.PackageReply:
    protocol, _, name = req.uri.partition("://")
    try:
        if not store.exists(protocol, name):
            store.put(protocol, name, req.data)
    except PackageError as e:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    return pb.PackageReply(exists=True)


def get(store: PackageStore, req: pb.PackageRequest, context: grpc.ServicerContext) -> pb.PackageReply:
    protocol, _, name = req.uri.partition("://")
    try:
        if not store.exists(protocol, name):
            return pb.PackageReply(exists=False)
        if req.only_check:
            return pb.PackageReply(exists=True)
        with open(store.path_of(protocol, name), "rb") as f:
            return pb.PackageReply(exists=True, data=f.read())
    except PackageError as e:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        raise  # abort raises; this keeps type checkers content
