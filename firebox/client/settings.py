"""Where the services are and how to reach them: targets, bearer token and TLS, from arguments
or FIREBOX_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from firebox.common.errors import InvalidArgument
from firebox.common.tls import ClientTLS

# The addresses `make run` listens on.
DEFAULT_AGENT = "127.0.0.1:50052"
DEFAULT_EXECUTOR = "127.0.0.1:50051"

# Environment variable for each setting; arguments win over the environment.
ENV_AGENT = "FIREBOX_AGENT"
ENV_EXECUTOR = "FIREBOX_EXECUTOR"
ENV_TOKEN = "FIREBOX_AUTH_TOKEN"
ENV_TLS_CA = "FIREBOX_TLS_CA"
# The client's own certificate for mutual TLS. Not FIREBOX_TLS_CERT / FIREBOX_TLS_KEY: the
# services read those as their server certificate, and a shell that runs both must not mix them.
ENV_TLS_CERT = "FIREBOX_TLS_CLIENT_CERT"
ENV_TLS_KEY = "FIREBOX_TLS_CLIENT_KEY"
ENV_TLS_SERVER_NAME = "FIREBOX_TLS_SERVER_NAME"

# Matches the servers' limit, so that big outputs and histories are not refused on the way back.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class SettingsError(ValueError):
    """Connection settings that cannot work (a client certificate without its key, a missing file)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach both services. TLS is on when any TLS file is given: `tls_ca` verifies the
    server (the system roots when unset), `tls_cert` + `tls_key` present a client certificate."""

    agent: str = DEFAULT_AGENT
    executor: str = DEFAULT_EXECUTOR
    token: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The name to check in the server's certificate when dialling by IP address.
    tls_server_name: str | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        agent: str | None = None,
        executor: str | None = None,
        token: str | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        tls_server_name: str | None = None,
    ) -> ConnectionSettings:
        """Settings from arguments, falling back to FIREBOX_* variables, then to the defaults."""
        env = os.environ if environ is None else environ

        def pick(value: str | Path | None, name: str) -> str | None:
            chosen = value if value not in (None, "") else env.get(name) or None
            return None if chosen is None else str(chosen)

        def path(value: str | Path | None, name: str) -> Path | None:
            chosen = pick(value, name)
            return Path(chosen).expanduser() if chosen else None

        return cls(
            agent=pick(agent, ENV_AGENT) or DEFAULT_AGENT,
            executor=pick(executor, ENV_EXECUTOR) or DEFAULT_EXECUTOR,
            token=pick(token, ENV_TOKEN),
            tls_ca=path(tls_ca, ENV_TLS_CA),
            tls_cert=path(tls_cert, ENV_TLS_CERT),
            tls_key=path(tls_key, ENV_TLS_KEY),
            tls_server_name=pick(tls_server_name, ENV_TLS_SERVER_NAME),
        )

    def with_targets(self, *, agent: str | None = None, executor: str | None = None) -> ConnectionSettings:
        return replace(self, agent=agent or self.agent, executor=executor or self.executor)

    @property
    def tls(self) -> bool:
        return any((self.tls_ca, self.tls_cert, self.tls_key))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the bearer token, sent on plain and TLS channels alike."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def client_tls(self) -> ClientTLS | None:
        """The TLS settings checked (None for plaintext); raises SettingsError for settings that
        cannot work, naming the flag."""
        try:
            return ClientTLS.from_settings(
                self.tls_ca, self.tls_cert, self.tls_key, self.tls_server_name, flag_prefix="--tls"
            )
        except InvalidArgument as exc:
            raise SettingsError(_with_env(exc.message)) from None

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for a plaintext channel. Raises SettingsError for a missing,
        unreadable or malformed file."""
        tls = self.client_tls()
        if tls is None:
            return None
        try:
            return tls.credentials()
        except InvalidArgument as exc:
            raise SettingsError(_with_env(exc.message)) from None

    def channel_options(self) -> list[tuple[str, int | str]]:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        tls = self.client_tls()
        return options + list(tls.channel_options()) if tls is not None else options


_FLAG_ENV = {
    "--tls-ca": ENV_TLS_CA,
    "--tls-cert": ENV_TLS_CERT,
    "--tls-key": ENV_TLS_KEY,
    "--tls-server-name": ENV_TLS_SERVER_NAME,
}


def _with_env(message: str) -> str:
    """ "--tls-key: missing ..." -> "--tls-key (FIREBOX_TLS_CLIENT_KEY): missing ...", as the CLI's
    settings come from either."""
    for flag, env in _FLAG_ENV.items():
        if message.startswith(f"{flag}:"):
            return f"{flag} ({env}){message[len(flag) :]}"
    return message
