"""The executor's one configuration object, loaded once from flags and FIREBOX_* variables.

A flag wins over its variable, the variable over the default. The auth token is read from the
environment only (FIREBOX_AUTH_TOKEN), never from a flag, so that it does not show in `ps`.

To add a setting: add a field to `ExecutorConfig`, then one `_Option` line to `OPTIONS`; the
flag, the variable, the parsing and the `--help` text all come from that line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor_service import admission
from executor_service.ceiling import PolicyCeiling
from executor_service.files import DEFAULT_MAX_SPOOL_BYTES
from firebox.common.secrets import DEFAULT_DENY_PATTERNS, parse_patterns

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


@dataclass(frozen=True)
class _Option:
    """One setting: its field, flag, variable, parser and help."""

    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str | None = None
    choices: Sequence[str] | None = None


OPTIONS: tuple[_Option, ...] = (
    _Option(
        "listen",
        "--listen",
        "FIREBOX_LISTEN",
        _listen,
        f"address to serve on (default {DEFAULT_LISTEN})",
        "HOST:PORT",
    ),
    _Option(
        "metrics_listen",
        "--metrics-listen",
        "FIREBOX_METRICS_LISTEN",
        _listen,
        "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
        "HOST:PORT",
    ),
    _Option(
        "config_dir",
        "--config-dir",
        "FIREBOX_CONFIG_DIR",
        lambda s: Path(s).expanduser(),
        "state directory; logs and the training log go to DIR/logs (default ~/.firebox/executor)",
        "DIR",
    ),
    _Option(
        "backend",
        "--backend",
        "FIREBOX_BACKEND",
        str,
        "isolation backend: docker, bwrap, or auto = docker when its engine answers (default auto)",
        choices=BACKEND_CHOICES,
    ),
    _Option(
        "image",
        "--image",
        "FIREBOX_IMAGE",
        str,
        f"default workspace image (default {DEFAULT_IMAGE})",
        "IMAGE",
    ),
    _Option(
        "output_cap_bytes",
        "--output-cap-bytes",
        "FIREBOX_OUTPUT_CAP_BYTES",
        _positive_int,
        f"output kept per execution, stdout and stderr together (default {DEFAULT_OUTPUT_CAP_BYTES})",
        "N",
    ),
    _Option(
        "execution_buffer_bytes",
        "--execution-buffer-bytes",
        "FIREBOX_EXECUTION_BUFFER_BYTES",
        _positive_int,
        "output kept per background execution for AttachExecution to replay, the newest bytes; "
        f"older output is dropped and counted (default {DEFAULT_EXECUTION_BUFFER_BYTES})",
        "N",
    ),
    _Option(
        "default_timeout",
        "--default-timeout",
        "FIREBOX_DEFAULT_TIMEOUT",
        _positive_float,
        f"seconds an Execute may run when it sets no timeout (default {DEFAULT_TIMEOUT_SECONDS:g})",
        "SECONDS",
    ),
    _Option(
        "max_sessions_per_workspace",
        "--max-sessions-per-workspace",
        "FIREBOX_MAX_SESSIONS_PER_WORKSPACE",
        _positive_int,
        f"open shell sessions allowed per workspace (default {DEFAULT_MAX_SESSIONS_PER_WORKSPACE})",
        "N",
    ),
    _Option(
        "max_running_per_workspace",
        "--max-running-per-workspace",
        "FIREBOX_MAX_RUNNING_PER_WORKSPACE",
        _positive_int,
        "sessionless executions running at once in one workspace; as many warm shells are kept "
        f"(default {admission.DEFAULT_RUNNING_PER_WORKSPACE})",
        "N",
    ),
    _Option(
        "max_queued_per_workspace",
        "--max-queued-per-workspace",
        "FIREBOX_MAX_QUEUED_PER_WORKSPACE",
        _non_negative_int,
        "sessionless executions waiting for a place in one workspace; past it RESOURCE_EXHAUSTED "
        f"(default {admission.DEFAULT_QUEUED_PER_WORKSPACE})",
        "N",
    ),
    _Option(
        "max_running",
        "--max-running",
        "FIREBOX_MAX_RUNNING",
        _positive_int,
        f"sessionless executions running at once in the executor (default {admission.DEFAULT_RUNNING})",
        "N",
    ),
    _Option(
        "max_queued",
        "--max-queued",
        "FIREBOX_MAX_QUEUED",
        _non_negative_int,
        "sessionless executions waiting in the executor; past it RESOURCE_EXHAUSTED "
        f"(default {admission.DEFAULT_QUEUED})",
        "N",
    ),
    _Option(
        "queue_timeout",
        "--queue-timeout",
        "FIREBOX_QUEUE_TIMEOUT",
        _positive_float,
        "seconds a sessionless execution waits for a place before RESOURCE_EXHAUSTED "
        f"(default {admission.DEFAULT_QUEUE_TIMEOUT:g})",
        "SECONDS",
    ),
    _Option(
        "warm_pool_size",
        "--warm-pool-size",
        "FIREBOX_WARM_POOL_SIZE",
        _non_negative_int,
        "ready workspaces of the default image and policy kept for CreateWorkspace to take "
        f"(docker backend; 0 disables; default {DEFAULT_WARM_POOL_SIZE})",
        "N",
    ),
    _Option(
        "idle_timeout",
        "--idle-timeout",
        "FIREBOX_IDLE_TIMEOUT",
        _non_negative_float,
        "stop a workspace after this many seconds with no command or file call, unless its "
        "CreateWorkspace says otherwise; files are kept (default 0 = never)",
        "SECONDS",
    ),
    _Option(
        "workspace_ttl",
        "--workspace-ttl",
        "FIREBOX_WORKSPACE_TTL",
        _non_negative_float,
        "delete a workspace this many seconds after it was created, unless its CreateWorkspace says "
        "otherwise (default 0 = never)",
        "SECONDS",
    ),
    _Option(
        "session_io",
        "--session-io",
        "FIREBOX_SESSION_IO",
        str,
        "how docker session shells move their bytes: fifo (FIFOs shared through a read-only bind "
        "mount, bypassing dockerd: faster), attach (the docker exec socket) or auto (fifo when "
        "dockerd runs in the executor's mount namespace; default auto)",
        choices=SESSION_IO_CHOICES,
    ),
    _Option(
        "env_deny",
        "--env-deny",
        "FIREBOX_ENV_DENY",
        _patterns,
        "variable-name patterns refused as secrets, space or comma separated (default "
        + " ".join(DEFAULT_DENY_PATTERNS)
        + ")",
        "PATTERNS",
    ),
    _Option(
        "env_allow",
        "--env-allow",
        "FIREBOX_ENV_ALLOW",
        _patterns,
        "variable names let through although they match a deny pattern (default none)",
        "NAMES",
    ),
    _Option(
        "policy_ceiling",
        "--policy-ceiling",
        "FIREBOX_POLICY_CEILING",
        _ceiling,
        "what a CreateWorkspace request may loosen of the default policy, as key=value,... "
        "(network, root, user, writable_root, new_privileges = allow|deny; capabilities = A+B or all; "
        "memory_bytes, pids_limit, cpu_millis, tmp_bytes, disk_bytes = the most a request may ask, 0 = any), or "
        "'open' for everything (default: nothing above the default policy)",
        "SPEC",
    ),
    _Option(
        "disk_bytes",
        "--disk-bytes",
        "FIREBOX_DISK_BYTES",
        _non_negative_int,
        "default size limit of a workspace's /workspace in bytes, 0 for none; writes past it fail with "
        f"ENOSPC (docker backend; default {DEFAULT_DISK_BYTES})",
        "N",
    ),
    _Option(
        "redact_patterns",
        "--redact-patterns",
        "FIREBOX_REDACT_PATTERNS",
        parse_patterns,
        "more credential shapes to redact by value from logs and training records, regular expressions separated by whitespace (built in: provider keys sk-…, AWS AKIA…/ASIA…, GitHub ghp_…/github_pat_…, Slack xox…, Google AIza…, JWTs, PEM private keys)",
        "REGEXES",
    ),
    _Option(
        "training_log",
        "--training-log",
        "FIREBOX_TRAINING_LOG",
        _on_off,
        "write one record per Execute to DIR/logs/executions-*.jsonl (default on)",
        "on|off",
    ),
    _Option(
        "shutdown_grace",
        "--shutdown-grace",
        "FIREBOX_SHUTDOWN_GRACE",
        _non_negative_float,
        f"seconds running executions get after SIGTERM before they are killed "
        f"(default {DEFAULT_SHUTDOWN_GRACE_SECONDS:g})",
        "SECONDS",
    ),
    _Option(
        "tls_cert",
        "--tls-cert",
        "FIREBOX_TLS_CERT",
        lambda s: Path(s).expanduser(),
        "serve TLS with this certificate chain (PEM); needs --tls-key (default plaintext)",
        "FILE",
    ),
    _Option(
        "tls_key",
        "--tls-key",
        "FIREBOX_TLS_KEY",
        lambda s: Path(s).expanduser(),
        "private key (PEM) of --tls-cert",
        "FILE",
    ),
    _Option(
        "tls_client_ca",
        "--tls-client-ca",
        "FIREBOX_TLS_CLIENT_CA",
        lambda s: Path(s).expanduser(),
        "require client certificates signed by this CA (mutual TLS)",
        "FILE",
    ),
    _Option(
        "tools_file",
        "--tools-file",
        "FIREBOX_TOOLS_FILE",
        lambda s: Path(s).expanduser(),
        "named tools for ListTools/Step, a JSON or TOML file (default none)",
        "PATH",
    ),
    _Option(
        "step_output_bytes",
        "--step-output-bytes",
        "FIREBOX_STEP_OUTPUT_BYTES",
        _step_output_bytes,
        f"output a Step returns per stream, the rest dropped (default {DEFAULT_STEP_OUTPUT_BYTES}, "
        f"at most {MAX_STEP_OUTPUT_BYTES})",
        "N",
    ),
    _Option(
        "max_file_bytes",
        "--max-file-bytes",
        "FIREBOX_MAX_FILE_BYTES",
        _positive_int,
        f"largest file UploadFile accepts and DownloadFile serves (default {DEFAULT_MAX_FILE_BYTES})",
        "N",
    ),
    _Option(
        "max_spool_bytes",
        "--max-spool-bytes",
        "FIREBOX_MAX_SPOOL_BYTES",
        _positive_int,
        "bytes all uploads in flight may hold in spool files on the executor's disk; past it "
        f"RESOURCE_EXHAUSTED (default {DEFAULT_MAX_SPOOL_BYTES})",
        "N",
    ),
    _Option(
        "log_level",
        "--log-level",
        "FIREBOX_LOG_LEVEL",
        _log_level,
        "console log level: debug, info, warning, error (default info)",
        "LEVEL",
    ),
    _Option(
        "log_json",
        "--log-json",
        "FIREBOX_LOG_JSON",
        _on_off,
        "console log as JSON lines (default off)",
        "on|off",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `firebox-executor`."""
    parser = argparse.ArgumentParser(
        prog="firebox-executor",
        description=(
            "Firebox executor: runs commands in isolated workspaces (Docker containers, or bubblewrap "
            "sandboxes) and streams their output over gRPC (firebox.executor.v1.ExecutorService). "
            "Every flag has a FIREBOX_* environment variable; the flag wins. "
            "Set FIREBOX_AUTH_TOKEN to require 'authorization: Bearer <token>' on every call but health "
            "checks and reflection."
        ),
    )
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.field, "default": None, "help": f"{opt.help} [{opt.env}]"}
        if opt.choices:
            kwargs["choices"] = opt.choices
        else:
            kwargs["type"] = opt.parse
            kwargs["metavar"] = opt.metavar
        parser.add_argument(opt.flag, **kwargs)
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ExecutorConfig:
    """Read flags (argv, without the program name) and FIREBOX_* variables into one config.

    A malformed variable exits like a malformed flag does: with a usage message naming it.
    """
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        flag_value = getattr(args, opt.field)
        if flag_value is not None:
            values[opt.field] = flag_value
            continue
        raw = environ.get(opt.env)
        if raw is None or raw == "":
            continue
        if opt.choices and raw not in opt.choices:
            parser.error(f"{opt.env}={raw!r}: expected one of {', '.join(opt.choices)}")
        try:
            values[opt.field] = opt.parse(raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"{opt.env}={raw!r}: {exc}")
    token = environ.get("FIREBOX_AUTH_TOKEN") or None
    return ExecutorConfig(**values, auth_token=token)
