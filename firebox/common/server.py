"""The gRPC server wiring both services share: options, auth, error mapping, health,
reflection, and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import signal
import sys
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from firebox.common.errors import FireboxError, InvalidArgument, ResourceExhausted
from firebox.common.handlers import Continuation, Handler
from firebox.common.limits import check_sizes, short_message
from firebox.common.logging import get_logger
from firebox.common.reflection import enable_reflection

log = get_logger("firebox.server")

# Requests bigger than this are refused by gRPC itself with RESOURCE_EXHAUSTED.
MAX_RECEIVE_BYTES = 16 * 1024 * 1024
MAX_SEND_BYTES = 16 * 1024 * 1024
HEALTH_PREFIX = "/grpc.health.v1.Health/"
# Calls that need no token: health checks, and reflection, which only describes the public
# schema and which grpcurl needs before it can even call the health service.
OPEN_PREFIXES = (HEALTH_PREFIX, "/grpc.reflection.")

_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]


async def _abort_for(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    """Map an exception escaping a handler to a status: domain errors keep their code, anything
    else is a bug reported as INTERNAL with an id to find it in the log."""
    if isinstance(exc, ResourceExhausted) and exc.retry_after is not None:
        await context.abort_with_status(retry_status(exc.code, short_message(exc.message), exc.retry_after))
    if isinstance(exc, FireboxError):
        await context.abort(exc.code, short_message(exc.message))
    incident = uuid.uuid4().hex[:12]
    log.error(
        "handler_failed",
        method=method,
        incident=incident,
        error=repr(exc),
        traceback="".join(traceback.format_exception(exc)),
    )
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); see the server log")


def retry_status(code: grpc.StatusCode, message: str, retry_after: float) -> grpc.Status:
    """A status carrying google.rpc.RetryInfo (grpc-status-details-bin), as Google APIs send it:
    clients and proxies that understand it back off by `retry_after` seconds."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromTimedelta(dt.timedelta(seconds=retry_after))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    result: grpc.Status = rpc_status.to_status(status)
    return result


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises this; it must pass through untouched.
    return isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError)


class _Undecodable:
    """Stands in for a request that did not parse (e.g. a string field with invalid UTF-8), so that
    the client gets INVALID_ARGUMENT instead of the UNKNOWN/INTERNAL gRPC gives on its own."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def invalid(self) -> InvalidArgument:
        return InvalidArgument("request", f"the message does not parse: {self.error}")


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return _Undecodable(exc)

    return deserialize


def _admit(request: Any) -> None:
    """Every request message passes here before a handler sees it: it must parse, and every
    field must be within its size limit (firebox.common.limits)."""
    if isinstance(request, _Undecodable):
        raise request.invalid()
    check_sizes(request)


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        _admit(request)
        yield request


def _wrap_handler(handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
    deserializer = _lenient(handler.request_deserializer)
    if handler.unary_unary:
        inner_uu: Any = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                _admit(request)
                return await inner_uu(request, context)
            except BaseException as exc:
                if _is_abort(exc):
                    raise
                await _abort_for(exc, context, method)

        return grpc.unary_unary_rpc_method_handler(unary_unary, deserializer, handler.response_serializer)
    if handler.stream_unary:
        inner_su: Any = handler.stream_unary

        async def stream_unary(request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await inner_su(_checked(request_iterator), context)
            except BaseException as exc:
                if _is_abort(exc):
                    raise
                await _abort_for(exc, context, method)

        return grpc.stream_unary_rpc_method_handler(stream_unary, deserializer, handler.response_serializer)

    inner_stream: Any = handler.unary_stream or handler.stream_stream

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            if handler.stream_stream:
                request = _checked(request)
            else:
                _admit(request)
            async for response in inner_stream(request, context):
                yield response
        except BaseException as exc:
            if _is_abort(exc) or isinstance(exc, GeneratorExit):
                raise
            await _abort_for(exc, context, method)

    factory = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    return factory(streaming, deserializer, handler.response_serializer)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """The one place where exceptions become gRPC statuses."""

    def __init__(self) -> None:
        # method -> (the handler as registered, its wrapped form): wrapping once per method, not
        # once per call (a hot path: every Execute passes here).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap_handler(handler, method)
        if len(self._wrapped) < 1024:  # methods are few; bounded all the same
            self._wrapped[method] = (handler, wrapped)
        return wrapped


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on every call but health checks and reflection."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        if handler_call_details.method.startswith(OPEN_PREFIXES):
            return await continuation(handler_call_details)
        supplied = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                supplied = value if isinstance(value, str) else value.decode(errors="replace")
                break
        # The scheme is case-insensitive (RFC 9110 section 11.1): "bearer x" is "Bearer x".
        scheme, _, credentials = supplied.strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        message = (
            "missing authorization metadata: send 'authorization: Bearer <token>' (FIREBOX_AUTH_TOKEN)"
            if not supplied
            else "invalid bearer token in authorization metadata"
        )
        return _refusing_like(handler, grpc.StatusCode.UNAUTHENTICATED, message)


def _refusing_like(
    handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same call type as `handler` that aborts at once."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield None  # pragma: no cover - abort raises

    ser, de = handler.response_serializer, handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, de, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, de, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, de, ser)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, de, ser)


@dataclass
class ServerSpec:
    """What a service hands to `serve`: how to register itself and what to do on stop."""

    name: str
    listen: str
    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    auth_token: str | None = None
    # Seconds running calls get after SIGTERM before they are cancelled.
    grace_seconds: float = 10.0
    # Called after health turns NOT_SERVING and new calls are refused, before the server stops.
    on_stopping: Callable[[float], Awaitable[None]] | None = None
    # Called after the server stopped.
    on_stopped: Callable[[], Awaitable[None]] | None = None
    server_credentials: grpc.ServerCredentials | None = None
    extra_interceptors: Iterable[grpc.aio.ServerInterceptor] = field(default_factory=tuple)
    # Outermost, so that it counts every call with its final status (refused ones included).
    metrics_interceptor: grpc.aio.ServerInterceptor | None = None


class RunningServer:
    """A started server: its bound port, its health servicer, and how to stop it gracefully."""

    def __init__(self, spec: ServerSpec, server: grpc.aio.Server, port: int, health_servicer: Any) -> None:
        self.spec = spec
        self.server = server
        self.port = port
        self.health = health_servicer
        self._stopped = asyncio.Event()
        self._stopping = False

    async def stop(self, grace: float | None = None) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.spec.grace_seconds if grace is None else grace
        log.info("stopping", service=self.spec.name, grace_seconds=grace)
        await self.health.enter_graceful_shutdown()
        stop_task = asyncio.create_task(self.server.stop(grace))
        if self.spec.on_stopping is not None:
            await self.spec.on_stopping(grace)
        await stop_task
        if self.spec.on_stopped is not None:
            await self.spec.on_stopped()
        log.info("stopped", service=self.spec.name)
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()

    @property
    def target(self) -> str:
        """An address clients on this machine can dial (a wildcard listen becomes 127.0.0.1)."""
        host = self.spec.listen.rpartition(":")[0].strip("[]")
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        return f"{host}:{self.port}"


async def start(spec: ServerSpec) -> RunningServer:
    """Build, bind and start a server; returns once it accepts calls."""
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if spec.metrics_interceptor is not None:
        interceptors.append(spec.metrics_interceptor)
    if spec.auth_token:
        interceptors.append(AuthInterceptor(spec.auth_token))
    interceptors.extend(spec.extra_interceptors)
    interceptors.append(ErrorMappingInterceptor())
    server = grpc.aio.server(interceptors=interceptors, options=_OPTIONS)
    spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(
        [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server
    )
    if spec.server_credentials is not None:
        port = server.add_secure_port(spec.listen, spec.server_credentials)
    else:
        port = server.add_insecure_port(spec.listen)
    if port == 0 and not spec.listen.endswith(":0"):
        raise OSError(f"cannot listen on {spec.listen}")
    await server.start()
    for name in ("", *spec.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", service=spec.name, listen=spec.listen, port=port, auth=bool(spec.auth_token))
    return RunningServer(spec, server, port, health_servicer)


def run_service(
    program: str,
    listen: str,
    serve: Callable[[], Coroutine[Any, Any, None]],
    startup_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run a service's `serve()` to its end as a console script: start-up problems a person must
    fix (a bad setting, a port in use, `startup_errors`) become one line on stderr and exit 2."""
    from firebox.common import logging as fb_logging

    try:
        asyncio.run(serve())
    except FireboxError as exc:  # a setting that cannot work, e.g. an unreadable TLS file
        print(f"{program}: {exc.message}", file=sys.stderr)
        return 2
    except startup_errors as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{program}: cannot serve on {listen}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        fb_logging.shutdown()
    return 0


async def serve_until_signalled(spec: ServerSpec) -> None:
    """Start, then on SIGTERM or SIGINT turn health NOT_SERVING, refuse new calls, give running
    calls the grace period and stop."""
    running = await start(spec)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(running.stop()))
    await running.wait()
