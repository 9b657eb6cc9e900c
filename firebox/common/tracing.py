"""OpenTelemetry traces of both services: off unless an OTLP endpoint is configured.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans go to
that collector over OTLP/HTTP in batches. Every gRPC call gets a server span (an interceptor
installed only then), continuing the caller's trace when its metadata carries a W3C
`traceparent`; the agent sends its current context to the executor the same way, so a
SendMessage trace holds the model calls, the tool calls and the executor's Execute. Log lines
written inside a span carry its trace_id and span_id.

Off, nothing is installed and each hook is one boolean test: the executor's Execute, a hot
path, pays nothing measurable (docs/team.md gives the figure).

The provider is this module's own, not the process-global one, so tests can swap exporters
(`use_exporter`) without OpenTelemetry's set-once rule getting in the way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from firebox.common.handlers import Continuation, Handler, rewrapped

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()


def enabled() -> bool:
    return _provider is not None


def configure(service: str) -> bool:
    """Turn tracing on when the environment names an OTLP endpoint; returns whether it did."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"firebox-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _install(provider)
    return True


def use_exporter(exporter: SpanExporter, service: str = "test") -> None:
    """Send every span to `exporter` as it ends (tests: the in-memory exporter)."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"firebox-{service}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _install(provider)


def _install(provider: TracerProvider) -> None:
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("firebox")


def shutdown() -> None:
    """Flush and stop; tracing is off afterwards."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer = None, trace.NoOpTracer()


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A child span of the current one, current while the block runs (a no-op span when off)."""
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def start_span(name: str, **attributes: Any) -> trace.Span:
    """A child span of the current one, ended by the caller with `.end()`, never made current."""
    return _tracer.start_span(name, attributes=attributes)


def outgoing(metadata: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
    """`metadata` plus the current trace context (`traceparent`), for a call to another service."""
    if _provider is None:
        return metadata
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return (*metadata, *carrier.items()) if carrier else metadata


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None outside one."""
    if _provider is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A server span per call, child of the caller's span when its metadata has a traceparent."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        carrier = {
            key: value if isinstance(value, str) else value.decode(errors="replace")
            for key, value in handler_call_details.invocation_metadata or ()
            if key in ("traceparent", "tracestate")
        }
        name = handler_call_details.method.lstrip("/")
        return _traced(handler, name, _propagator.extract(carrier) if carrier else None)


def _traced(
    handler: grpc.RpcMethodHandler[Any, Any], name: str, parent: otel_context.Context | None
) -> grpc.RpcMethodHandler[Any, Any]:
    attributes = {"rpc.system": "grpc", "rpc.method": name}

    def around_unary(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with _tracer.start_as_current_span(
                name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
            ):
                return await inner(request, context)

        return call

    def around_stream(inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            with _tracer.start_as_current_span(
                name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
            ):
                async for response in inner(request, context):
                    yield response

        return stream

    return rewrapped(handler, around_unary, around_stream)
