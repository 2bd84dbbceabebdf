"""Children tied to their parent are started without forking a process that runs gRPC.

A ``preexec_fn`` makes ``subprocess`` fork the parent; with gRPC threads busy in the parent, the child
then ran gRPC's fork handlers and aborted on ``epoll_wait error: Bad file descriptor`` (the node agent
failed to start about once in 130 inits). The child now arms PR_SET_PDEATHSIG itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import grpc

from spindle import _lifeline
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels, make_server

CHILD = ("import ctypes, sys; from spindle._lifeline import die_with_parent; die_with_parent(); "
         "sig = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(sig)); print(sig.value)")


def test_children_started_while_grpc_is_busy_never_abort_and_die_with_their_parent() -> None:
    server, port = make_server("t", "127.0.0.1", 0)
    server.start()
    channels = Channels("t")
    stop = threading.Event()

    def chatter() -> None:  # keep gRPC's threads and poller busy while we start children
        while not stop.is_set():
            try:
                rpc.HeadStub(channels.get(f"127.0.0.1:{port}")).GetClusterView(pb.Empty(), metadata=channels.metadata,
                                                                                timeout=1)
            except grpc.RpcError:
                pass

    threads = [threading.Thread(target=chatter, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        failures = []
        for _ in range(40):
            proc = subprocess.run([sys.executable, "-c", CHILD], env=_lifeline.child_env(dict(os.environ)),
                                  capture_output=True, text=True, timeout=60)
            if proc.returncode != 0 or proc.stdout.strip() != "9" or proc.stderr.strip():
                failures.append((proc.returncode, proc.stdout, proc.stderr[-300:]))
        assert failures == []
    finally:
        stop.set()
        for t in threads:
            t.join()
        channels.close()
        server.stop(0)


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    env = {**os.environ, _lifeline.ENV: "1"}  # "started by" a pid that is not our parent
    proc = subprocess.run([sys.executable, "-c", "from spindle._lifeline import die_with_parent; die_with_parent(); "
                           "print('still here')"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "still here" not in proc.stdout
