"""Generated gRPC/protobuf code for spindle.proto (produced by the build, see runtime/setup.py)."""

from . import spindle_pb2 as pb
from . import spindle_pb2_grpc as rpc

__all__ = ["pb", "rpc"]
