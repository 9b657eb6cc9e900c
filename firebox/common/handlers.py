"""Wrapping a gRPC method handler's behaviour whatever its call type (interceptors use it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc


def rewrapped(
    handler: grpc.RpcMethodHandler,
    around_unary: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]],
    around_stream: Callable[[Callable[..., AsyncIterator[Any]]], Callable[..., AsyncIterator[Any]]],
) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour wrapped: `around_unary(inner)` for calls with one response,
    `around_stream(inner)` for streamed responses; same call type and serializers."""
    ser, de = handler.response_serializer, handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(around_unary(handler.unary_unary), de, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(around_unary(handler.stream_unary), de, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(around_stream(handler.unary_stream), de, ser)
    return grpc.stream_stream_rpc_method_handler(around_stream(handler.stream_stream), de, ser)
