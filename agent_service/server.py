"""Wiring: config -> store, provider, executor client, training log, run manager, gRPC server.

`serve(config)` is what the process runs; `start_agent(config)` builds and starts the same thing
and returns it running, for tests, benchmarks and embedders.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

from agent_service import metrics
from agent_service.approvals import POLICY_NAMES
from agent_service.config import AgentConfig
from agent_service.connections import Connections
from agent_service.executor_pool import ExecutorPool
from agent_service.mcp_tools import load_mcp_config
from agent_service.providers.base import ModelProvider, ProviderSettings
from agent_service.review import ApprovalReviewer
from agent_service.runs import RunManager
from agent_service.servicer import AgentServicer
from agent_service.skills import ensure_skills
from agent_service.store import Store, redact_url
from agent_service.stores import open_store
from agent_service.toolloop import LoopSettings, ToolLoop
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.common import logging as fb_logging
from firebox.common import server as fb_server
from firebox.common import tracing
from firebox.common.metrics import MetricsInterceptor, MetricsServer
from firebox.common.secrets import redactor
from firebox.common.tls import ClientTLS, ServerTLS
from firebox.common.trainlog import TrainingLog

log = fb_logging.get_logger("firebox.agent.server")

SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


@dataclass
class Agent:
    """A running agent: its server and the parts behind it."""

    config: AgentConfig
    server: fb_server.RunningServer
    store: Store
    runs: RunManager
    connections: Connections
    executor: ExecutorPool
    training_log: TrainingLog
    loop: ToolLoop

    @property
    def provider(self) -> ModelProvider:
        """The default connection's provider."""
        return self.connections.default.provider

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace: float | None = None) -> None:
        """As on SIGTERM: health NOT_SERVING, runs get `grace`, then end as INTERRUPTED."""
        await self.server.stop(self.config.shutdown_grace if grace is None else grace)


async def start_agent(config: AgentConfig) -> Agent:
    """Open the store (marking runs of a previous life INTERRUPTED), build every part, serve.
    A TLS file that cannot be used raises InvalidArgument (naming the flag) before anything starts."""
    server_tls = ServerTLS.from_settings(config.tls_cert, config.tls_key, config.tls_client_ca)
    server_credentials = server_tls.credentials() if server_tls is not None else None
    executor_tls = ClientTLS.from_settings(
        config.executor_tls_ca,
        config.executor_tls_cert,
        config.executor_tls_key,
        config.executor_tls_server_name or None,
    )
    if executor_tls is not None:
        executor_tls.credentials()  # read the files now: a bad one stops start-up
    store = await open_store(config.store_url)
    if not store.shared:
        # This process is the only one using the file: whatever was running died with the last.
        # With a shared database other replicas' runs are live; runs of a replica that died are
        # taken over when its lease runs out (RunManager).
        interrupted = await store.interrupt_unfinished(_now_ns())
        if interrupted:
            log.warning("runs_interrupted_by_restart", count=len(interrupted), run_ids=interrupted[:20])
    connections = Connections(
        config.connections,
        ProviderSettings(
            idle_timeout=config.idle_timeout,
            retries=config.provider_retries,
            retry_base_delay=config.retry_base_delay,
            retry_max_delay=config.retry_max_delay,
            max_output_tokens=config.max_output_tokens,
            thinking_budget=config.thinking_budget,
        ),
    )
    executor = ExecutorPool(
        config.executor, store, config.auth_token, executor_tls, config.executor_resolve_interval
    )
    await executor.start()
    redactor.add_patterns(config.redact_patterns)
    training_log = TrainingLog(config.log_dir, enabled=config.training_log)
    skills = await ensure_skills(config.skills_path, config.skills_source)
    mcp_servers = load_mcp_config(config.mcp_config) if config.mcp_config is not None else {}
    loop = ToolLoop(
        store,
        connections,
        executor,
        training_log,
        LoopSettings(
            max_steps=config.max_steps,
            tool_output_limit=config.tool_output_limit,
            tool_timeout=config.tool_timeout,
            approval_timeout=config.approval_timeout,
            default_approval_policy=POLICY_NAMES[config.default_approval_policy],
            read_only_commands=config.read_only_commands,
            compact_threshold=config.compact_threshold,
            keep_user_tokens=config.keep_user_tokens,
            turn_snapshots=config.turn_snapshots,
            turn_snapshot_max_age=config.turn_snapshot_max_age,
            turn_snapshot_max_bytes=config.turn_snapshot_max_bytes,
        ),
        skills=skills,
        mcp_servers=mcp_servers,
        reviewer=ApprovalReviewer(
            connections.get(config.review_connection) if config.review_connection else None,
            config.review_model,
            config.review_timeout,
        ),
    )
    runs = RunManager(store, loop, config.event_retention, config.run_lease, run_timeout=config.run_timeout)
    servicer = AgentServicer(config, store, runs, connections, executor, training_log, loop)
    await runs.start()

    async def on_stopping(grace: float) -> None:
        # Runs get most of the grace period; what is left lets their last events reach clients.
        await runs.shutdown(max(0.0, grace - min(1.0, grace / 2)))

    metrics_server = (
        MetricsServer(
            metrics.REGISTRY, config.metrics_listen, metrics.live_collector(runs.counts, training_log)
        )
        if config.metrics_listen
        else None
    )

    async def on_stopped() -> None:
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.close)
        await connections.close()
        await loop.mcp.close()
        await executor.close()
        await store.close()
        await asyncio.to_thread(training_log.close)

    spec = fb_server.ServerSpec(
        name="agent",
        listen=config.listen,
        register=lambda server: agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        auth_token=config.auth_token,
        grace_seconds=config.shutdown_grace,
        on_stopping=on_stopping,
        on_stopped=on_stopped,
        server_credentials=server_credentials,
        metrics_interceptor=MetricsInterceptor(metrics.RPC) if metrics_server is not None else None,
        extra_interceptors=(tracing.TracingInterceptor(),) if tracing.enabled() else (),
    )
    try:
        running = await fb_server.start(spec)
    except BaseException:
        await on_stopped()
        raise
    log.info(
        "agent_ready",
        executor=config.executor,
        tls=server_tls is not None,
        mutual_tls=bool(server_tls and server_tls.mutual),
        executor_tls=executor_tls is not None,
        connections=[
            f"{c.name}: {c.spec.wire_format} {c.provider.target if c.provider.configured else '(not configured)'}"
            f" model {c.spec.default_model or '(none)'}"
            for c in connections
        ],
        max_output_tokens=config.max_output_tokens,
        run_timeout_seconds=config.run_timeout,
        database=redact_url(config.store_url),
        training_log=config.training_log,
        mcp_servers=sorted(mcp_servers),
    )
    return Agent(config, running, store, runs, connections, executor, training_log, loop)


def _now_ns() -> int:
    import time

    return time.time_ns()


async def serve(config: AgentConfig) -> None:
    """Run the agent until SIGTERM or SIGINT, then stop gracefully."""
    fb_logging.configure("agent", config.log_dir, config.log_level, config.log_json)
    tracing.configure("agent")
    agent = await start_agent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(agent.stop()))
    await agent.server.wait()
    await asyncio.to_thread(tracing.shutdown)
