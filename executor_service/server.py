"""Wiring: config -> logging, backend, workspace and session managers, training log, gRPC server.

`serve(config)` is the one entry point a process calls; `start_executor(config)` builds and starts
the same thing and returns it running, for tests and embedders.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from executor_service import metrics
from executor_service.admission import Admission, AdmissionLimits
from executor_service.backend import Policy
from executor_service.backends import choose_backend
from executor_service.background import BackgroundExecutions
from executor_service.ceiling import PolicyCeiling
from executor_service.config import ExecutorConfig
from executor_service.engine import ExecutionEngine
from executor_service.expiry import WorkspaceExpiry
from executor_service.files import WorkspaceFiles
from executor_service.servicer import ExecutorServicer
from executor_service.sessions import SessionManager
from executor_service.tools import ToolRegistry, load_tools_file
from executor_service.workspaces import WorkspaceManager
from firebox import __version__
from firebox.common import logging as fb_logging
from firebox.common import server as fb_server
from firebox.common import tracing
from firebox.common.metrics import MetricsInterceptor, MetricsServer
from firebox.common.secrets import SecretPolicy, redactor
from firebox.common.tls import ServerTLS
from firebox.common.trainlog import TrainingLog
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc

log = fb_logging.get_logger("executor.server")

SERVICE_NAME = executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name


@dataclass
class Executor:
    """A running executor: its server and the parts behind it."""

    config: ExecutorConfig
    server: fb_server.RunningServer
    workspaces: WorkspaceManager
    sessions: SessionManager
    training_log: TrainingLog

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop as on SIGTERM: health NOT_SERVING, executions get `grace`, then killed."""
        await self.server.stop(self.config.shutdown_grace if grace is None else grace)


async def start_executor(config: ExecutorConfig) -> Executor:
    """Build every part from `config`, adopt existing workspaces, and start serving."""
    # TLS files are read first, so that a bad one stops start-up before anything else happens.
    tls = ServerTLS.from_settings(config.tls_cert, config.tls_key, config.tls_client_ca)
    server_credentials = tls.credentials() if tls is not None else None
    # So is the tools file: an unusable one refuses start-up (bad tools inside it are skipped).
    tools = ToolRegistry(
        await asyncio.to_thread(load_tools_file, config.tools_file) if config.tools_file else ()
    )
    secret_policy = SecretPolicy(config.env_deny, config.env_allow)
    # Logs hide values of every secret-looking name, allowed ones included.
    redactor.policy = SecretPolicy(config.env_deny)
    redactor.add_patterns(config.redact_patterns)
    if config.auth_token:
        redactor.add_value(config.auth_token)
    backend = await choose_backend(config.backend, config.config_dir, config.session_io)
    default_policy = Policy(disk_bytes=config.disk_bytes)
    workspaces = WorkspaceManager(
        backend,
        default_image=config.image,
        default_policy=default_policy,
        secret_policy=secret_policy,
        warm_pool_size=config.warm_pool_size,
        ceiling=PolicyCeiling.parse(config.policy_ceiling, default_policy) if config.policy_ceiling else None,
    )
    sessions = SessionManager(
        backend,
        max_sessions_per_workspace=config.max_sessions_per_workspace,
        warm_shells_per_workspace=config.max_running_per_workspace,
    )
    workspaces.sessions = sessions
    engine = ExecutionEngine(
        backend,
        sessions,
        output_cap_bytes=config.output_cap_bytes,
        admission=Admission(
            AdmissionLimits(
                running_per_workspace=config.max_running_per_workspace,
                queued_per_workspace=config.max_queued_per_workspace,
                running=config.max_running,
                queued=config.max_queued,
                queue_timeout=config.queue_timeout,
            )
        ),
    )
    await workspaces.adopt()
    background = BackgroundExecutions(config.executions_dir, config.execution_buffer_bytes)
    await background.load()
    expiry = WorkspaceExpiry(
        config.config_dir,
        config.idle_timeout,
        config.workspace_ttl,
        running=engine.running_count,
        known=workspaces.known,
        stop=workspaces.stop,
        delete=workspaces.delete,
    )
    await expiry.start()
    workspaces.expiry = expiry
    training_log = TrainingLog(config.training_log_dir, enabled=config.training_log)
    files = WorkspaceFiles(
        backend,
        max_file_bytes=config.max_file_bytes,
        spool_dir=config.config_dir / "uploads",
        max_spool_bytes=config.max_spool_bytes,
    )
    await asyncio.to_thread(files.remove_leftovers)
    servicer = ExecutorServicer(
        workspaces,
        sessions,
        engine,
        training_log,
        secret_policy,
        default_timeout=config.default_timeout,
        version=__version__,
        tools=tools,
        files=files,
        step_output_bytes=config.step_output_bytes,
        background=background,
    )

    async def on_stopping(grace: float) -> None:
        # Running commands are killed a moment before gRPC cancels the calls, so that their
        # final message (END_REASON_SHUTDOWN) still reaches the clients.
        await sessions.shutdown(max(0.0, grace - min(1.0, grace / 2)))

    metrics_server = (
        MetricsServer(
            metrics.REGISTRY, config.metrics_listen, metrics.live_collector(workspaces, training_log)
        )
        if config.metrics_listen
        else None
    )

    async def on_stopped() -> None:
        await expiry.close()
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.close)
        await workspaces.close()
        await asyncio.to_thread(training_log.close)
        await backend.close()

    spec = fb_server.ServerSpec(
        name="executor",
        server_credentials=server_credentials,
        listen=config.listen,
        register=lambda server: executor_pb2_grpc.add_ExecutorServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        auth_token=config.auth_token,
        grace_seconds=config.shutdown_grace,
        on_stopping=on_stopping,
        on_stopped=on_stopped,
        metrics_interceptor=MetricsInterceptor(metrics.RPC) if metrics_server is not None else None,
        extra_interceptors=(tracing.TracingInterceptor(),) if tracing.enabled() else (),
    )
    running = await fb_server.start(spec)
    log.info(
        "executor_ready",
        backend=backend.name,
        image=config.image,
        workspaces=workspaces.count,
        config_dir=str(config.config_dir),
        training_log=config.training_log,
        policy_ceiling=workspaces.ceiling.describe(),
    )
    return Executor(config, running, workspaces, sessions, training_log)


def raise_open_files_limit(cap: int = 1 << 20) -> None:
    """Lift the soft limit on open files to the hard one: each shell session holds a few (its FIFOs
    and exec socket), and a service manager's default soft limit of 1024 would cap the executor
    at a few hundred sessions."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            log.info("open_files_limit_raised", soft=soft, now=wanted)
        except (ValueError, OSError) as exc:
            log.warning("open_files_limit_unchanged", soft=soft, error=str(exc))


async def serve(config: ExecutorConfig) -> None:
    """Run the executor until SIGTERM or SIGINT, then stop gracefully."""
    import signal

    fb_logging.configure("executor", config.log_dir, config.log_level, config.log_json)
    raise_open_files_limit()
    tracing.configure("executor")
    executor = await start_executor(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(executor.stop()))
    await executor.server.wait()
    await asyncio.to_thread(tracing.shutdown)
