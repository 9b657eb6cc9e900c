"""Prometheus metrics both services share: RPC counts and latencies, a /metrics listener, and
gauges read from live objects at scrape time.

Each service keeps its metrics in a registry of its own (agent_service/metrics.py,
executor_service/metrics.py), so a test process running both serves each its own. The
listener (`--metrics-listen HOST:PORT`) is prometheus_client's HTTP server on a thread, apart
from the gRPC port; nothing listens when the flag is unset, and the RPC interceptor is only
installed then, so a service without metrics pays nothing per call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from firebox.common.handlers import Continuation, Handler, rewrapped
from firebox.common.logging import get_logger
from firebox.common.trainlog import TrainingLog

log = get_logger("firebox.metrics")

# Seconds: from a sub-millisecond warm Execute to a minutes-long model run.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class RpcMetrics:
    """Calls by method and status code, and how long they took (a stream: until it ended)."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.calls = Counter(
            f"{prefix}_rpc_requests",
            "gRPC calls handled, by method and status code",
            ["method", "code"],
            registry=registry,
        )
        self.seconds = Histogram(
            f"{prefix}_rpc_duration_seconds",
            "gRPC call duration (streams: until their end), by method and status code",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.calls.labels(method, code.name).inc()
        self.seconds.labels(method, code.name).observe(seconds)


def _code(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> grpc.StatusCode:
    import asyncio

    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call (outermost, so it sees the status the error mapping set)."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rpartition("/")[2] or handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        if len(self._wrapped) < 1024:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        observe = self._metrics.observe

        def around_unary(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                error: BaseException | None = None
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    observe(method, _code(context, error), time.perf_counter() - started)

            return call

        def around_stream(inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                started = time.perf_counter()
                error: BaseException | None = None
                try:
                    async for response in inner(request, context):
                        yield response
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    observe(method, _code(context, error), time.perf_counter() - started)

            return stream

        return rewrapped(handler, around_unary, around_stream)


# (name, help, label names, a function returning {label values: value})
Gauge = tuple[str, str, tuple[str, ...], Callable[[], dict[tuple[str, ...], float]]]


class GaugeCollector(Collector):
    """Gauges whose values are read from live objects when Prometheus scrapes: (name, help,
    labels, a function returning {label values: value})."""

    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self._gauges = list(gauges)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, help_text, labels, read in self._gauges:
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            try:
                values = read()
            except Exception as exc:  # a scrape must not fail because one object is closing
                log.warning("metric_unreadable", metric=name, error=repr(exc))
                values = {}
            for label_values, value in values.items():
                family.add_metric(list(label_values), value)
            yield family


def training_log_gauges(prefix: str, training_log: TrainingLog) -> list[Gauge]:
    """Queue depth and drops of a service's training log."""
    return [
        (
            f"{prefix}_training_log_queue_depth",
            "Records waiting for the training-log writer",
            (),
            lambda: {(): float(training_log.queued)},
        ),
        (
            f"{prefix}_training_log_dropped",
            "Training-log records lost since start (queue full, write failures), by kind",
            ("kind",),
            lambda: {(kind,): float(n) for kind, n in training_log.dropped_by_kind.items()},
        ),
    ]


class MetricsServer:
    """The /metrics HTTP listener of one service, with the gauges of its live objects
    registered for as long as it serves."""

    def __init__(self, registry: CollectorRegistry, listen: str, live: Collector) -> None:
        host, _, port = listen.rpartition(":")
        self._registry, self._live = registry, live
        registry.register(live)
        try:
            self._server, self._thread = start_http_server(int(port), host.strip("[]"), registry=registry)
        except BaseException:
            registry.unregister(live)
            raise
        self.port = self._server.server_port
        log.info("metrics_serving", listen=listen, port=self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._registry.unregister(self._live)
