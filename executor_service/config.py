"""The executor's one configuration object, loaded once from flags and FIREBOX_* variables.

A flag wins over its variable, the variable over the default. The auth token is read from the
environment only (FIREBOX_AUTH_TOKEN), never from a flag, so that it does not show in `ps`.

To add a setting: add a field to `ExecutorConfig`, then one `Setting` line to `SETTINGS`
(firebox/common/settings.py); the flag, the variable, the parsing, the `--help` text and the row
of docs/executor.md's table all come from that line (`make docs` writes the table).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from executor_service import admission
from executor_service.ceiling import PolicyCeiling
from executor_service.files import DEFAULT_MAX_SPOOL_BYTES
from firebox.common import settings
from firebox.common.secrets import DEFAULT_DENY_PATTERNS, parse_patterns
from firebox.common.settings import Setting, check_fields

BACKEND_CHOICES = ("auto", "docker", "bwrap")
DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_IMAGE = "firebox-busybox:latest"
# Per execution, stdout and stderr together. Past it output is dropped and the final message says so.
DEFAULT_OUTPUT_CAP_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_MAX_SESSIONS_PER_WORKSPACE = 32
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
# Per stream of a Step's Observation (it travels in one unary response).
DEFAULT_STEP_OUTPUT_BYTES = 1024 * 1024
MAX_STEP_OUTPUT_BYTES = 6 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
DEFAULT_EXECUTION_BUFFER_BYTES = 1024 * 1024
# A workspace's /workspace: a sparse filesystem image, so the size costs nothing until written.
DEFAULT_DISK_BYTES = 2 * 1024 * 1024 * 1024
# Ready workspaces (default image and policy, no env) kept running so that CreateWorkspace takes one
# in milliseconds. Off by default: each member is an idle container the operator did not ask for,
# and every workspace the engine holds for an owner is then no longer one a client created.
DEFAULT_WARM_POOL_SIZE = 0
# How docker session shells move their bytes: "fifo" (FIFOs in <config-dir>/io, bind-mounted
# read-only into each workspace), "attach" (the docker exec socket, through dockerd), or "auto":
# fifo when the engine runs in the executor's own mount namespace (not so when the executor runs
# in a container: its config dir is then not the host's).
SESSION_IO_CHOICES = ("auto", "fifo", "attach")


def _default_config_dir() -> Path:
    return Path.home() / ".firebox" / "executor"


@dataclass(frozen=True)
class ExecutorConfig:
    """Every setting of the executor, decided."""

    listen: str = DEFAULT_LISTEN
    # HOST:PORT of the Prometheus /metrics listener; "" = none.
    metrics_listen: str = ""
    config_dir: Path = field(default_factory=_default_config_dir)
    backend: str = "auto"
    image: str = DEFAULT_IMAGE
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES
    # Output kept per background execution for AttachExecution (the newest bytes).
    execution_buffer_bytes: int = DEFAULT_EXECUTION_BUFFER_BYTES
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_sessions_per_workspace: int = DEFAULT_MAX_SESSIONS_PER_WORKSPACE
    # Admission of sessionless executions (executor_service/admission.py).
    max_running_per_workspace: int = admission.DEFAULT_RUNNING_PER_WORKSPACE
    max_queued_per_workspace: int = admission.DEFAULT_QUEUED_PER_WORKSPACE
    max_running: int = admission.DEFAULT_RUNNING
    max_queued: int = admission.DEFAULT_QUEUED
    queue_timeout: float = admission.DEFAULT_QUEUE_TIMEOUT
    warm_pool_size: int = DEFAULT_WARM_POOL_SIZE
    # Defaults for workspaces whose CreateWorkspace sets none, in seconds; 0: never.
    idle_timeout: float = 0.0
    workspace_ttl: float = 0.0
    session_io: str = "auto"
    env_deny: tuple[str, ...] = DEFAULT_DENY_PATTERNS
    env_allow: tuple[str, ...] = ()
    # What CreateWorkspace may loosen of the default policy, PolicyCeiling.parse's text; "":
    # nothing (executor_service/ceiling.py). Parsed over the default policy at start-up.
    policy_ceiling: str = ""
    # The default size limit of /workspace (IsolationPolicy.disk_bytes); 0: unlimited.
    disk_bytes: int = DEFAULT_DISK_BYTES
    # Operators' own credential shapes, redacted by value besides the built-in ones.
    redact_patterns: tuple[str, ...] = ()
    training_log: bool = True
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    log_level: str = "info"
    log_json: bool = False
    # Named tools for ListTools/Step (JSON or TOML); None: no tools.
    tools_file: Path | None = None
    step_output_bytes: int = DEFAULT_STEP_OUTPUT_BYTES
    # Largest file UploadFile accepts and DownloadFile serves.
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    # Spool all uploads in flight may hold on the executor's disk.
    max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES
    # TLS: a certificate and key turn it on; a client CA also requires client certificates.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # From FIREBOX_AUTH_TOKEN only. None: no auth.
    auth_token: str | None = field(default=None, repr=False)

    @property
    def log_dir(self) -> Path:
        return self.config_dir / "logs"

    @property
    def training_log_dir(self) -> Path:
        return self.config_dir / "logs"

    @property
    def executions_dir(self) -> Path:
        """Records of background executions (see background.py)."""
        return self.config_dir / "executions"

    @property
    def workspaces_dir(self) -> Path:
        """Where the bwrap backend keeps its workspaces."""
        return self.config_dir / "workspaces"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _step_output_bytes(text: str) -> int:
    # Both streams travel in one response, which must stay under the 16 MiB message limit.
    value = _positive_int(text)
    if value > MAX_STEP_OUTPUT_BYTES:
        raise argparse.ArgumentTypeError(f"at most {MAX_STEP_OUTPUT_BYTES}, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return value


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def _patterns(text: str) -> tuple[str, ...]:
    return tuple(p for p in (part.strip() for part in text.replace(",", " ").split()) if p)


def _ceiling(text: str) -> str:
    try:
        PolicyCeiling.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _listen(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _log_level(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("debug", "info", "warning", "error"):
        raise argparse.ArgumentTypeError(f"expected debug, info, warning or error, got {text!r}")
    return lowered


SETTINGS: tuple[Setting, ...] = (
    Setting("listen", "--listen", "FIREBOX_LISTEN", _listen, "address to serve on", metavar="HOST:PORT"),
    Setting(
        "metrics_listen",
        "--metrics-listen",
        "FIREBOX_METRICS_LISTEN",
        _listen,
        "serve Prometheus metrics at http://HOST:PORT/metrics",
        metavar="HOST:PORT",
        default="off",
    ),
    Setting(
        "config_dir",
        "--config-dir",
        "FIREBOX_CONFIG_DIR",
        settings.path,
        "state: DIR/logs/executor.log (JSON lines), the training log DIR/logs/executions-YYYYMMDD.jsonl, "
        "DIR/instance-id, bwrap workspaces in DIR/workspaces",
        metavar="DIR",
    ),
    Setting(
        "backend",
        "--backend",
        "FIREBOX_BACKEND",
        str,
        "isolation backend: docker, bwrap, or auto = docker when its engine answers a ping within 3 s, "
        "else bwrap with a warning in the log",
        choices=("auto", "docker", "bwrap"),
    ),
    Setting("image", "--image", "FIREBOX_IMAGE", str, "default workspace image", metavar="IMAGE"),
    Setting(
        "output_cap_bytes",
        "--output-cap-bytes",
        "FIREBOX_OUTPUT_CAP_BYTES",
        _positive_int,
        "output kept per execution, stdout and stderr together; past it output is dropped and the "
        "final message says output_truncated",
        metavar="N",
    ),
    Setting(
        "execution_buffer_bytes",
        "--execution-buffer-bytes",
        "FIREBOX_EXECUTION_BUFFER_BYTES",
        _positive_int,
        "output kept per background execution for AttachExecution to replay, the newest bytes; older output is dropped and counted",
        metavar="N",
    ),
    Setting(
        "default_timeout",
        "--default-timeout",
        "FIREBOX_DEFAULT_TIMEOUT",
        _positive_float,
        "seconds an Execute may run when it sets no timeout",
        metavar="SECONDS",
    ),
    Setting(
        "max_sessions_per_workspace",
        "--max-sessions-per-workspace",
        "FIREBOX_MAX_SESSIONS_PER_WORKSPACE",
        _positive_int,
        "open shell sessions allowed per workspace",
        metavar="N",
    ),
    Setting(
        "max_running_per_workspace",
        "--max-running-per-workspace",
        "FIREBOX_MAX_RUNNING_PER_WORKSPACE",
        _positive_int,
        "sessionless executions running at once in one workspace; as many warm shells are kept",
        metavar="N",
    ),
    Setting(
        "max_queued_per_workspace",
        "--max-queued-per-workspace",
        "FIREBOX_MAX_QUEUED_PER_WORKSPACE",
        _non_negative_int,
        "sessionless executions waiting for a place in one workspace; past it RESOURCE_EXHAUSTED",
        metavar="N",
    ),
    Setting(
        "max_running",
        "--max-running",
        "FIREBOX_MAX_RUNNING",
        _positive_int,
        "sessionless executions running at once in the executor",
        metavar="N",
    ),
    Setting(
        "max_queued",
        "--max-queued",
        "FIREBOX_MAX_QUEUED",
        _non_negative_int,
        "sessionless executions waiting in the executor; past it RESOURCE_EXHAUSTED",
        metavar="N",
    ),
    Setting(
        "queue_timeout",
        "--queue-timeout",
        "FIREBOX_QUEUE_TIMEOUT",
        _positive_float,
        "seconds a sessionless execution waits for a place before RESOURCE_EXHAUSTED",
        metavar="SECONDS",
    ),
    Setting(
        "warm_pool_size",
        "--warm-pool-size",
        "FIREBOX_WARM_POOL_SIZE",
        _non_negative_int,
        "ready workspaces of the default image and policy kept for CreateWorkspace to take (docker backend; 0 disables)",
        metavar="N",
    ),
    Setting(
        "idle_timeout",
        "--idle-timeout",
        "FIREBOX_IDLE_TIMEOUT",
        _non_negative_float,
        "stop a workspace after this many seconds with no command or file call, unless its CreateWorkspace says otherwise; files are kept",
        metavar="SECONDS",
        default="0 = never",
    ),
    Setting(
        "workspace_ttl",
        "--workspace-ttl",
        "FIREBOX_WORKSPACE_TTL",
        _non_negative_float,
        "delete a workspace this many seconds after it was created, unless its CreateWorkspace says otherwise",
        metavar="SECONDS",
        default="0 = never",
    ),
    Setting(
        "session_io",
        "--session-io",
        "FIREBOX_SESSION_IO",
        str,
        "how docker session shells move their bytes: fifo (FIFOs shared through a read-only bind mount, bypassing dockerd: faster), attach (the docker exec socket) or auto (fifo when dockerd runs in the executor's mount namespace)",
        choices=("auto", "fifo", "attach"),
    ),
    Setting(
        "env_deny",
        "--env-deny",
        "FIREBOX_ENV_DENY",
        _patterns,
        "variable-name patterns refused as secrets: case-insensitive globs, space or comma separated",
        metavar="PATTERNS",
        default="*KEY* *SECRET* *TOKEN* *PASSWORD*",
    ),
    Setting(
        "env_allow",
        "--env-allow",
        "FIREBOX_ENV_ALLOW",
        _patterns,
        "variable names let through although they match a deny pattern",
        metavar="NAMES",
    ),
    Setting(
        "policy_ceiling",
        "--policy-ceiling",
        "FIREBOX_POLICY_CEILING",
        _ceiling,
        "what a CreateWorkspace request may loosen of the default policy, as key=value,... (network, root, user, writable_root, new_privileges = allow|deny; capabilities = A+B or all; memory_bytes, pids_limit, cpu_millis, tmp_bytes, disk_bytes = the most a request may ask, 0 = any), or 'open' for everything",
        metavar="SPEC",
        default="nothing above the default policy",
    ),
    Setting(
        "disk_bytes",
        "--disk-bytes",
        "FIREBOX_DISK_BYTES",
        _non_negative_int,
        "default size limit of a workspace's /workspace in bytes, 0 for none; writes past it fail with ENOSPC (docker backend)",
        metavar="N",
    ),
    Setting(
        "redact_patterns",
        "--redact-patterns",
        "FIREBOX_REDACT_PATTERNS",
        parse_patterns,
        "more credential shapes to redact by value from logs and training records, regular expressions separated by whitespace (built in: provider keys sk-…, AWS AKIA…/ASIA…, GitHub ghp_…/github_pat_…, Slack xox…, Google AIza…, JWTs, PEM private keys)",
        metavar="REGEXES",
    ),
    Setting(
        "training_log",
        "--training-log",
        "FIREBOX_TRAINING_LOG",
        _on_off,
        "write one record per Execute to DIR/logs/executions-*.jsonl",
        metavar="on|off",
    ),
    Setting(
        "shutdown_grace",
        "--shutdown-grace",
        "FIREBOX_SHUTDOWN_GRACE",
        _non_negative_float,
        "seconds running executions get after SIGTERM before they are killed",
        metavar="SECONDS",
    ),
    *settings.SERVER_TLS,
    Setting(
        "tools_file",
        "--tools-file",
        "FIREBOX_TOOLS_FILE",
        settings.path,
        "named tools for ListTools/Step, a JSON or TOML file",
        metavar="PATH",
    ),
    Setting(
        "step_output_bytes",
        "--step-output-bytes",
        "FIREBOX_STEP_OUTPUT_BYTES",
        _step_output_bytes,
        "output a Step returns per stream, the rest dropped",
        metavar="N",
        default="1048576, at most 6291456",
    ),
    Setting(
        "max_file_bytes",
        "--max-file-bytes",
        "FIREBOX_MAX_FILE_BYTES",
        _positive_int,
        "largest file UploadFile accepts and DownloadFile serves",
        metavar="N",
    ),
    Setting(
        "max_spool_bytes",
        "--max-spool-bytes",
        "FIREBOX_MAX_SPOOL_BYTES",
        _positive_int,
        "bytes all uploads in flight may hold in spool files on the executor's disk; past it RESOURCE_EXHAUSTED",
        metavar="N",
    ),
    Setting(
        "log_level",
        "--log-level",
        "FIREBOX_LOG_LEVEL",
        _log_level,
        "console log level: debug, info, warning, error",
        metavar="LEVEL",
    ),
    Setting(
        "log_json", "--log-json", "FIREBOX_LOG_JSON", _on_off, "console log as JSON lines", metavar="on|off"
    ),
)
check_fields(SETTINGS, ExecutorConfig)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `firebox-executor`."""
    return settings.build_parser(
        "firebox-executor",
        "Firebox executor: runs commands in isolated workspaces (Docker containers, or bubblewrap "
        "sandboxes) and streams their output over gRPC (firebox.executor.v1.ExecutorService). "
        "Every flag has a FIREBOX_* environment variable; the flag wins. "
        "Set FIREBOX_AUTH_TOKEN to require 'authorization: Bearer <token>' on every call but health "
        "checks and reflection.",
        SETTINGS,
        ExecutorConfig(),
    )


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ExecutorConfig:
    """Read flags (argv, without the program name) and FIREBOX_* variables into one config."""
    environ = os.environ if environ is None else environ
    values = settings.read(build_parser(), SETTINGS, argv, environ)
    token = environ.get("FIREBOX_AUTH_TOKEN") or None
    return ExecutorConfig(**values, auth_token=token)
