"""Object transfer between nodes without extra copies: the FetchObject stream, encoded by hand.

The wire format is exactly the ``Chunk`` message of spindle.proto (field 1, ``data``), but the agent
encodes each chunk straight from the store file's mapping and the receiver takes the data as a view
of the received buffer, instead of building and parsing protobuf objects: two copies fewer per byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from spindle._proto import pb

FETCH_METHOD = "/spindle.v1.NodeAgent/FetchObject"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_chunk(data: bytes | memoryview) -> bytes:
    """A serialized ``Chunk{data}``: tag of field 1 (length-delimited), length, bytes."""
    return b"\x0a" + _varint(len(data)) + data


def decode_chunk(buf: bytes) -> memoryview:
    """The ``data`` of a serialized ``Chunk`` as a view into ``buf`` (other fields are skipped)."""
    mv = memoryview(buf)
    pos, data = 0, mv[0:0]
    while pos < len(mv):
        key, pos = _read_varint(mv, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, pos = _read_varint(mv, pos)
            if field == 1:
                data = mv[pos : pos + n]
            pos += n
        elif wire == 0:
            _, pos = _read_varint(mv, pos)
        else:
            raise ValueError(f"unexpected wire type {wire} in Chunk")
    return data


def _read_varint(mv: memoryview, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = mv[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def add_agent_servicer(servicer: Any, server: grpc.Server) -> None:
    """Register the NodeAgent service from its descriptor, with FetchObject's chunks encoded by hand.

    (The generated ``add_NodeAgentServicer_to_server`` would register protobuf serializers for every
    method, and registered handlers take precedence over generic ones.)
    """
    service = pb.DESCRIPTOR.services_by_name["NodeAgent"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        if method.name == "FetchObject":
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                behaviour, request_deserializer=request_cls.FromString, response_serializer=encode_chunk)
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                behaviour, request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                behaviour, request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def fetch_call(channel: grpc.Channel) -> Any:
    """The FetchObject call object of ``channel`` (what ``Channels.stub`` caches per peer)."""
    return channel.unary_stream(FETCH_METHOD, request_serializer=pb.FetchRequest.SerializeToString,
                                response_deserializer=decode_chunk)


def fetch_stream(channel: Any, request: pb.FetchRequest, metadata: Any, timeout: float) -> Iterator[memoryview]:
    """Stream an object's chunks; ``channel`` is a channel, or the call object ``fetch_call`` made of one."""
    call = fetch_call(channel) if isinstance(channel, grpc.Channel) else channel
    return iter(call(request, metadata=metadata, timeout=timeout))
