"""The agent's one configuration object, loaded once from flags and FIREBOX_* variables.

A flag wins over its variable, the variable over the default. Secrets (the provider's API key,
the auth token) come from the environment only, never from a flag, so they do not show in `ps`;
they are registered with the log redactor as soon as they are read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from firebox.common.secrets import redactor

DEFAULT_LISTEN = "127.0.0.1:50052"
DEFAULT_EXECUTOR = "127.0.0.1:50051"
DEFAULT_MAX_STEPS = 25
DEFAULT_TOOL_OUTPUT_LIMIT = 10 * 1024
DEFAULT_EVENT_RETENTION_SECONDS = 15 * 60.0
DEFAULT_IDLE_TIMEOUT_SECONDS = 60.0
DEFAULT_TOOL_TIMEOUT_SECONDS = 600.0


def _default_config_dir() -> Path:
    return Path.home() / ".firebox" / "agent"


@dataclass(frozen=True)
class AgentConfig:
    """Every setting of the agent, decided."""

    listen: str = DEFAULT_LISTEN
    executor: str = DEFAULT_EXECUTOR
    config_dir: Path = field(default_factory=_default_config_dir)
    # None: <config_dir>/agent.db.
    database: Path | None = None
    provider_base_url: str = ""
    model: str = ""
    max_steps: int = DEFAULT_MAX_STEPS
    # Bytes of one tool's output the model is given (head and tail); the client gets everything.
    tool_output_limit: int = DEFAULT_TOOL_OUTPUT_LIMIT
    # How long a finished run's events stay available to StreamRun.
    event_retention: float = DEFAULT_EVENT_RETENTION_SECONDS
    # A provider stream silent for longer than this fails.
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    # Time limit of one shell tool execution.
    tool_timeout: float = DEFAULT_TOOL_TIMEOUT_SECONDS
    # Retries of a failed provider call (429, 5xx, connection errors), with backoff from retry_base_delay.
    provider_retries: int = 3
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    training_log: bool = True
    shutdown_grace: float = 10.0
    log_level: str = "info"
    log_json: bool = False
    # From FIREBOX_PROVIDER_API_KEY or OPENAI_API_KEY only.
    provider_api_key: str = field(default="", repr=False)
    # From FIREBOX_AUTH_TOKEN only: required of this server's clients and sent to the executor.
    auth_token: str | None = field(default=None, repr=False)

    @property
    def log_dir(self) -> Path:
        return self.config_dir / "logs"

    @property
    def database_path(self) -> Path:
        return self.database if self.database is not None else self.config_dir / "agent.db"

    @property
    def provider_configured(self) -> bool:
        """A base URL (a local server needs no key) or an API key (OpenAI's default URL)."""
        return bool(self.provider_base_url or self.provider_api_key)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _duration(text: str) -> float:
    """Seconds, or a number with a unit: 90, 90s, 15m, 1h."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    stripped = text.strip().lower()
    scale = units.get(stripped[-1:], None)
    number = stripped[:-1] if scale is not None else stripped
    return _positive_float(number) * (scale or 1.0)


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _log_level(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("debug", "info", "warning", "error"):
        raise argparse.ArgumentTypeError(f"expected debug, info, warning or error, got {text!r}")
    return lowered


# (flag, field, variable, parser, help). The variable is the flag's default; the flag wins.
_OPTIONS = (
    ("--listen", "listen", "FIREBOX_LISTEN", _address, "address to serve on, HOST:PORT"),
    ("--executor", "executor", "FIREBOX_EXECUTOR", _address, "the executor service, HOST:PORT"),
    ("--config-dir", "config_dir", "FIREBOX_CONFIG_DIR", Path, "state directory; logs under DIR/logs"),
    (
        "--database",
        "database",
        "FIREBOX_DATABASE",
        Path,
        "SQLite file for sessions and runs (default DIR/agent.db)",
    ),
    (
        "--provider-base-url",
        "provider_base_url",
        "FIREBOX_PROVIDER_BASE_URL",
        str,
        "OpenAI-compatible API base URL, e.g. http://localhost:11434/v1 (empty: OpenAI's)",
    ),
    ("--model", "model", "FIREBOX_MODEL", str, "default model name for sessions and Generate"),
    ("--max-steps", "max_steps", "FIREBOX_MAX_STEPS", _positive_int, "most model calls in one run"),
    (
        "--tool-output-limit",
        "tool_output_limit",
        "FIREBOX_TOOL_OUTPUT_LIMIT",
        _positive_int,
        "bytes of a tool's output given to the model, head and tail (the client gets all)",
    ),
    (
        "--event-retention",
        "event_retention",
        "FIREBOX_EVENT_RETENTION",
        _duration,
        "how long a finished run's events can be replayed, e.g. 900, 15m",
    ),
    (
        "--idle-timeout",
        "idle_timeout",
        "FIREBOX_IDLE_TIMEOUT",
        _duration,
        "a provider stream silent for longer than this fails, e.g. 60s",
    ),
    (
        "--tool-timeout",
        "tool_timeout",
        "FIREBOX_TOOL_TIMEOUT",
        _duration,
        "time limit of one shell tool call",
    ),
    (
        "--provider-retries",
        "provider_retries",
        "FIREBOX_PROVIDER_RETRIES",
        int,
        "retries of a provider call on 429, 5xx or connection errors",
    ),
    (
        "--training-log",
        "training_log",
        "FIREBOX_TRAINING_LOG",
        _on_off,
        "write generation and feedback records: on|off",
    ),
    ("--log-level", "log_level", "FIREBOX_LOG_LEVEL", _log_level, "debug, info, warning or error"),
    ("--log-json", "log_json", "FIREBOX_LOG_JSON", _on_off, "JSON lines on the console too: on|off"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firebox-agent",
        description=(
            "Firebox agent service: sessions, streaming model runs and the tool loop, with every command "
            "run by the executor. The provider's API key is read from FIREBOX_PROVIDER_API_KEY or "
            "OPENAI_API_KEY, the server's bearer token from FIREBOX_AUTH_TOKEN (environment only)."
        ),
    )
    defaults = AgentConfig()
    for flag, name, variable, parse, help_text in _OPTIONS:
        default = getattr(defaults, name)
        shown = "DIR/agent.db" if name == "database" else default
        parser.add_argument(
            flag, dest=name, type=parse, default=None, help=f"{help_text} [{variable}; default {shown}]"
        )
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Parse flags over environment variables over defaults; exits with a usage message on bad input."""
    env = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    values: dict[str, object] = {}
    for _flag, name, variable, parse, _help in _OPTIONS:
        given = getattr(args, name)
        if given is None and env.get(variable):
            try:
                given = parse(env[variable])
            except (argparse.ArgumentTypeError, ValueError) as exc:
                parser.error(f"{variable}: {exc}")
        if given is not None:
            values[name] = given
    if int(str(values.get("provider_retries", 0))) < 0:
        parser.error("--provider-retries: must be zero or more")
    api_key = env.get("FIREBOX_PROVIDER_API_KEY") or env.get("OPENAI_API_KEY") or ""
    token = env.get("FIREBOX_AUTH_TOKEN") or None
    redactor.add_value(api_key)
    redactor.add_value(token)
    for name in ("config_dir", "database"):
        if name in values:
            values[name] = Path(str(values[name])).expanduser()
    return AgentConfig(provider_api_key=api_key, auth_token=token, **values)  # type: ignore[arg-type]
