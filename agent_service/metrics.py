"""The agent's Prometheus metrics (served with --metrics-listen; firebox/common/metrics.py)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from firebox.common.metrics import LATENCY_BUCKETS, GaugeCollector, RpcMetrics, training_log_gauges
from firebox.common.trainlog import TrainingLog
from firebox.trace.v1 import trace_pb2

REGISTRY = CollectorRegistry()
RPC = RpcMetrics(REGISTRY, "firebox_agent")
MODEL_CALL_SECONDS = Histogram(
    "firebox_agent_model_call_duration_seconds",
    "Model calls from request to the last chunk, by model and outcome (ok, error)",
    ["model", "outcome"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    "firebox_agent_model_tokens",
    "Tokens the provider reported, by model and kind (input, cached_input, output, reasoning)",
    ["model", "kind"],
    registry=REGISTRY,
)
RUN_TAKEOVERS = Counter(
    "firebox_agent_run_takeovers",
    "Runs of agent replicas whose lease ran out that this replica took over, by what it did with "
    "them: continued (a running run), interrupted (a queued run: its message was never stored)",
    ["action"],
    registry=REGISTRY,
)
# Model names come from clients (session settings): past this many, further ones count as "other".
MAX_MODEL_LABELS = 32
_models: set[str] = set()


def _model_label(model: str) -> str:
    if model in _models:
        return model
    if len(_models) < MAX_MODEL_LABELS:
        _models.add(model)
        return model
    return "other"


def observe_model_call(record: trace_pb2.GenerationRecord) -> None:
    """One model call ended (its GenerationRecord, as the training log gets it)."""
    model = _model_label(record.model)
    seconds = record.latency.seconds + record.latency.nanos / 1e9
    MODEL_CALL_SECONDS.labels(model, "error" if record.error else "ok").observe(seconds)
    if record.HasField("usage"):
        usage = record.usage
        for kind, value in (
            ("input", usage.input_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("output", usage.output_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if value:
                MODEL_TOKENS.labels(model, kind).inc(value)


def live_collector(run_counts: Callable[[], dict[str, int]], training_log: TrainingLog) -> GaugeCollector:
    """Gauges read at scrape time from this agent's run manager and training log."""
    return GaugeCollector(
        [
            (
                "firebox_agent_active_runs",
                "Runs this replica drives, by status (running, queued)",
                ("status",),
                lambda: {(status,): float(n) for status, n in run_counts().items()},
            ),
            *training_log_gauges("firebox_agent", training_log),
        ]
    )
