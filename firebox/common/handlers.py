"""Wrapping a gRPC method handler's behaviour whatever its call type (interceptors use it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

# A method handler of grpc.aio's server. Its behaviours are coroutine functions and async
# generator functions; typeshed types them as the sync server's, so they are used here as Any.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# What a server interceptor's intercept_service is given to reach the handler.
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


def rewrapped(
    handler: Handler,
    around_unary: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]],
    around_stream: Callable[[Callable[..., AsyncIterator[Any]]], Callable[..., AsyncIterator[Any]]],
) -> Handler:
    """`handler` with its behaviour wrapped: `around_unary(inner)` for calls with one response,
    `around_stream(inner)` for streamed responses; same call type and serializers."""
    ser, de = handler.response_serializer, handler.request_deserializer
    unary_unary: Any = handler.unary_unary
    stream_unary: Any = handler.stream_unary
    unary_stream: Any = handler.unary_stream
    stream_stream: Any = handler.stream_stream
    if unary_unary:
        return grpc.unary_unary_rpc_method_handler(around_unary(unary_unary), de, ser)
    if stream_unary:
        return grpc.stream_unary_rpc_method_handler(around_unary(stream_unary), de, ser)
    if unary_stream:
        return grpc.unary_stream_rpc_method_handler(around_stream(unary_stream), de, ser)
    return grpc.stream_stream_rpc_method_handler(around_stream(stream_stream), de, ser)
