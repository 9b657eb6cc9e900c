"""Named provider connections: several model providers in one agent, one chosen per session.

An operator lists connections in a TOML file (`--connections FILE`), in order; the first is the
default of sessions and Generate calls that name none:

    [[connections]]
    name = "local"
    wire_format = "openai"
    base_url = "http://localhost:11434/v1"
    default_model = "qwen2.5-coder:7b"
    context_window = 32768

    [[connections]]
    name = "claude"
    wire_format = "anthropic"
    api_key_env = "ANTHROPIC_API_KEY"
    default_model = "claude-sonnet-4-5"
    context_window = 200000

A connection's key is read from the variable `api_key_env` names, once, at start; the file never
holds a key. The single-provider flags (--provider, --provider-base-url, --model) stay: without a
file they are the one connection, named "default"; with one, they add "default" in front of the
file's connections when --provider-base-url is set.

`Connections` holds one provider per connection, built at start, and answers "which provider,
model and window for this session (or request)".
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent_service.providers import build_provider
from agent_service.providers.base import WIRE_FORMATS, ModelProvider, ProviderSettings
from firebox.common.errors import FailedPrecondition, InvalidArgument

# The name of the connection the single-provider flags make.
DEFAULT_CONNECTION = "default"
MAX_CONNECTIONS = 32
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEYS = ("name", "wire_format", "base_url", "api_key_env", "default_model", "context_window")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConnectionsError(ValueError):
    """The connections file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class ConnectionSpec:
    """One connection as configured: where the provider is and how to talk to it."""

    name: str
    wire_format: str
    base_url: str = ""
    # The environment variable the key was read from ("" for a server that needs none).
    api_key_env: str = ""
    default_model: str = ""
    context_window: int = 0
    api_key: str = field(default="", repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)


def load_connections_file(
    path: Path, environ: Mapping[str, str], default_context_window: int
) -> list[ConnectionSpec]:
    """The connections of a TOML file, in order, keys read from `environ`; ConnectionsError on
    anything wrong (unreadable, unknown keys, bad or repeated names, a key variable not set)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConnectionsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConnectionsError(f"{path} is not valid TOML: {exc}") from None
    extra = sorted(set(document) - {"connections"})
    if extra:
        raise ConnectionsError(f"{path}: unknown top-level key {extra[0]!r}; expected [[connections]] tables")
    tables = document.get("connections")
    if not isinstance(tables, list) or not tables:
        raise ConnectionsError(f"{path}: no connections; add at least one [[connections]] table")
    if len(tables) > MAX_CONNECTIONS:
        raise ConnectionsError(f"{path}: at most {MAX_CONNECTIONS} connections, got {len(tables)}")
    specs = [_spec(table, index, environ, default_context_window) for index, table in enumerate(tables)]
    check_unique(specs)
    return specs


def _spec(
    table: object, index: int, environ: Mapping[str, str], default_context_window: int
) -> ConnectionSpec:
    where = f"connections[{index}]"
    if not isinstance(table, dict):
        raise ConnectionsError(f"{where}: expected a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConnectionsError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(_KEYS)}")
    for key in _KEYS:
        if key in table and not isinstance(table[key], int if key == "context_window" else str):
            raise ConnectionsError(
                f"{where}.{key}: expected a {'number' if key == 'context_window' else 'string'}"
            )
    name = table.get("name", "")
    if not NAME_PATTERN.fullmatch(name):
        raise ConnectionsError(
            f"{where}.name: expected 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), "
            f"got {name[:80]!r}"
        )
    where = f"connection {name}"
    wire_format = table.get("wire_format", "")
    if wire_format not in WIRE_FORMATS:
        raise ConnectionsError(f"{where}: wire_format must be openai or anthropic, got {wire_format[:40]!r}")
    window = table.get("context_window", default_context_window)
    if isinstance(window, bool) or window <= 0:
        raise ConnectionsError(f"{where}: context_window must be a positive number of tokens")
    variable = table.get("api_key_env", "")
    key = ""
    if variable:
        if not _VARIABLE.fullmatch(variable):
            raise ConnectionsError(
                f"{where}: api_key_env must name an environment variable, got {variable[:80]!r}"
            )
        key = environ.get(variable, "")
        if not key:
            raise ConnectionsError(f"{where}: its key variable {variable} is not set")
    base_url = table.get("base_url", "").strip()
    if not base_url and not key:
        raise ConnectionsError(f"{where}: give base_url (a local or proxy server), api_key_env, or both")
    return ConnectionSpec(
        name=name,
        wire_format=wire_format,
        base_url=base_url,
        api_key_env=variable,
        default_model=table.get("default_model", ""),
        context_window=window,
        api_key=key,
    )


def check_unique(specs: Iterable[ConnectionSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConnectionsError(f"connection name {spec.name!r} is used twice")
        seen.add(spec.name)


@dataclass(frozen=True)
class Connection:
    """A connection and the provider built for it."""

    spec: ConnectionSpec
    provider: ModelProvider

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def context_window(self) -> int:
        return self.spec.context_window

    def resolve_model(self, requested: str) -> str:
        """The model to call on this connection: the one asked for, else its default;
        FAILED_PRECONDITION naming what to set when there is neither."""
        if not requested and not self.spec.default_model and self.name != DEFAULT_CONNECTION:
            raise FailedPrecondition(
                f"no model given and connection {self.name} has no default_model: set it in the "
                "connections file, or the session's settings.model"
            )
        return self.provider.resolve_model(requested)


class Connections:
    """Every configured connection, its provider built once; looked up by name per turn."""

    def __init__(self, specs: Iterable[ConnectionSpec], base: ProviderSettings) -> None:
        """`base` carries the limits every provider shares (timeouts, retries, output tokens);
        each connection fills in its wire format, URL, key and default model."""
        self._by_name: dict[str, Connection] = {}
        for spec in specs:
            settings = ProviderSettings(
                wire_format=spec.wire_format,
                base_url=spec.base_url,
                api_key=spec.api_key,
                default_model=spec.default_model,
                idle_timeout=base.idle_timeout,
                connect_timeout=base.connect_timeout,
                retries=base.retries,
                retry_base_delay=base.retry_base_delay,
                retry_max_delay=base.retry_max_delay,
                max_output_tokens=base.max_output_tokens,
                thinking_budget=base.thinking_budget,
            )
            provider = build_provider(settings)
            if spec.api_key_env:
                # Errors about refused credentials name the variable this connection reads.
                provider.key_hint = spec.api_key_env
            self._by_name[spec.name] = Connection(spec, provider)
        if not self._by_name:
            raise ValueError("at least one connection is needed")

    @property
    def default(self) -> Connection:
        return next(iter(self._by_name.values()))

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self._by_name.values())

    def get(self, name: str, field: str = "connection") -> Connection:
        """The connection called `name` ("" for the default); INVALID_ARGUMENT naming the known
        ones when there is none by that name."""
        if not name:
            return self.default
        found = self._by_name.get(name)
        if found is None:
            raise InvalidArgument(
                field, f"unknown connection {name[:80]!r}; this agent has: {', '.join(self._by_name)}"
            )
        return found

    async def close(self) -> None:
        for connection in self._by_name.values():
            await connection.provider.close()
