"""The executor's Prometheus metrics (served with --metrics-listen; firebox/common/metrics.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from firebox.common.metrics import GaugeCollector, RpcMetrics, training_log_gauges
from firebox.common.trainlog import TrainingLog

if TYPE_CHECKING:
    from executor_service.workspaces import WorkspaceManager

REGISTRY = CollectorRegistry()
RPC = RpcMetrics(REGISTRY, "firebox_executor")
EXECUTIONS = Counter(
    "firebox_executor_executions",
    "Commands that ended, by why (exited, signaled, timed_out, stopped, cancelled, out_of_memory, shutdown)",
    ["end_reason"],
    registry=REGISTRY,
)


def live_collector(workspaces: WorkspaceManager, training_log: TrainingLog) -> GaugeCollector:
    """Gauges read at scrape time from this executor's workspaces, warm pool and training log."""
    return GaugeCollector(
        [
            (
                "firebox_executor_workspaces",
                "Workspaces this executor knows, by state",
                ("state",),
                lambda: {(state,): float(n) for state, n in workspaces.count_by_state().items()},
            ),
            (
                "firebox_executor_warm_pool_ready",
                "Started workspaces waiting in the warm pool",
                (),
                lambda: {(): float(workspaces.pool.ready if workspaces.pool is not None else 0)},
            ),
            *training_log_gauges("firebox_executor", training_log),
        ]
    )
