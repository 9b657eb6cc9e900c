"""TLS for Firebox's gRPC servers and channels, loaded from PEM files.

Servers: a certificate chain and its key; with a client CA as well, mutual TLS — every client
must present a certificate signed by that CA or the handshake fails.
Channels (the agent's connection to the executor, the CLI's to either service): a CA to trust
(the system roots when none is given), and optionally a client certificate and key for mutual TLS.

Every file is read once, when the service starts; a file that is missing, unreadable, empty or
not PEM raises `InvalidArgument` naming the flag and the path, so a misconfigured service fails
at start with a message a person can act on, instead of at the first handshake.

Flags and environment variables the services expose (a flag wins over its variable):

    server side (both services)
      --tls-cert PATH        FIREBOX_TLS_CERT        certificate chain, PEM
      --tls-key PATH         FIREBOX_TLS_KEY         private key, PEM
      --tls-client-ca PATH   FIREBOX_TLS_CLIENT_CA   require client certificates signed by this CA
    the agent's connection to the executor
      --executor-tls-ca PATH           FIREBOX_EXECUTOR_TLS_CA           CA that signed the executor's cert
      --executor-tls-cert PATH         FIREBOX_EXECUTOR_TLS_CERT         the agent's client certificate
      --executor-tls-key PATH          FIREBOX_EXECUTOR_TLS_KEY          its key
      --executor-tls-server-name NAME  FIREBOX_EXECUTOR_TLS_SERVER_NAME  name to check in the executor's
                                       certificate when dialling it by IP (Swarm replicas)

A channel uses TLS when any of its CA, cert or key is set; a server when cert and key are set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from firebox.common.errors import InvalidArgument

# Flag name -> environment variable, for the services' config tables and for --help texts.
SERVER_TLS_ENV = {
    "--tls-cert": "FIREBOX_TLS_CERT",
    "--tls-key": "FIREBOX_TLS_KEY",
    "--tls-client-ca": "FIREBOX_TLS_CLIENT_CA",
}
EXECUTOR_CLIENT_TLS_ENV = {
    "--executor-tls-ca": "FIREBOX_EXECUTOR_TLS_CA",
    "--executor-tls-cert": "FIREBOX_EXECUTOR_TLS_CERT",
    "--executor-tls-key": "FIREBOX_EXECUTOR_TLS_KEY",
    "--executor-tls-server-name": "FIREBOX_EXECUTOR_TLS_SERVER_NAME",
}

# A PEM file bigger than this is not a certificate bundle; refuse it rather than read it all.
MAX_PEM_BYTES = 1024 * 1024
_CERT_MARKER = b"-----BEGIN CERTIFICATE-----"
_KEY_MARKERS = (b"PRIVATE KEY-----",)


def read_pem(path: str | Path, flag: str, *, kind: str) -> bytes:
    """Read one PEM file for `flag`; `kind` is "certificate" or "key". Raises InvalidArgument
    naming the flag and the path when the file is missing, unreadable, empty, too big or not PEM."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise InvalidArgument(flag, f"file not found: {path}") from None
    except IsADirectoryError:
        raise InvalidArgument(flag, f"{path} is a directory, expected a PEM file") from None
    except PermissionError:
        raise InvalidArgument(flag, f"permission denied reading {path}") from None
    except OSError as exc:
        raise InvalidArgument(flag, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise InvalidArgument(flag, f"{path} is larger than {MAX_PEM_BYTES} bytes; not a PEM {kind} file")
    if not data.strip():
        raise InvalidArgument(flag, f"{path} is empty, expected a PEM {kind}")
    if kind == "certificate" and _CERT_MARKER not in data:
        raise InvalidArgument(flag, f"{path} holds no PEM certificate (no '{_CERT_MARKER.decode()}' line)")
    if kind == "key" and not any(marker in data for marker in _KEY_MARKERS):
        raise InvalidArgument(flag, f"{path} holds no PEM private key (no '-----BEGIN ... PRIVATE KEY-----')")
    return data


@dataclass(frozen=True)
class ServerTLS:
    """The files a TLS server needs: its certificate chain and key; a client CA turns on mutual
    TLS (client certificates required)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """Read the files and build server credentials; raises InvalidArgument on a bad file."""
        cert = read_pem(self.cert, "--tls-cert", kind="certificate")
        key = read_pem(self.key, "--tls-key", kind="key")
        if self.client_ca is None:
            return grpc.ssl_server_credentials([(key, cert)])
        client_ca = read_pem(self.client_ca, "--tls-client-ca", kind="certificate")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=True
        )

    @classmethod
    def from_settings(
        cls, cert: str | Path | None, key: str | Path | None, client_ca: str | Path | None = None
    ) -> ServerTLS | None:
        """Decide from optional settings: None when neither cert nor key is set (plaintext);
        InvalidArgument when only one of them is, or a client CA comes without them."""
        if not cert and not key:
            if client_ca:
                raise InvalidArgument(
                    "--tls-client-ca",
                    "needs --tls-cert and --tls-key too: mutual TLS is TLS plus client certs",
                )
            return None
        if not cert:
            raise InvalidArgument("--tls-cert", "missing: --tls-key was given, the server needs both")
        if not key:
            raise InvalidArgument("--tls-key", "missing: --tls-cert was given, the server needs both")
        return cls(Path(cert), Path(key), Path(client_ca) if client_ca else None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerTLS | None:
        """Decide from FIREBOX_TLS_CERT / FIREBOX_TLS_KEY / FIREBOX_TLS_CLIENT_CA."""
        return cls.from_settings(
            environ.get("FIREBOX_TLS_CERT"),
            environ.get("FIREBOX_TLS_KEY"),
            environ.get("FIREBOX_TLS_CLIENT_CA"),
        )


@dataclass(frozen=True)
class ClientTLS:
    """What a TLS channel needs: the CA to trust (system roots when None), optionally a client
    certificate and key (mutual TLS), and optionally the name to check in the server's
    certificate instead of the dialled host (for dialling replicas by IP).

    `flag_prefix` only shapes error messages: "--executor-tls" for the agent, "--tls" for the CLI.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    flag_prefix: str = "--executor-tls"

    def credentials(self) -> grpc.ChannelCredentials:
        """Read the files and build channel credentials; raises InvalidArgument on a bad file."""
        prefix = self.flag_prefix
        ca = read_pem(self.ca, f"{prefix}-ca", kind="certificate") if self.ca else None
        cert = read_pem(self.cert, f"{prefix}-cert", kind="certificate") if self.cert else None
        key = read_pem(self.key, f"{prefix}-key", kind="key") if self.key else None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def channel_options(self) -> list[tuple[str, str]]:
        """Extra channel options: the server-name override when one is set."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    @classmethod
    def from_settings(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
        *,
        flag_prefix: str = "--executor-tls",
    ) -> ClientTLS | None:
        """Decide from optional settings: None (plaintext) when no CA, cert or key is set;
        InvalidArgument when a client cert comes without its key or the other way round."""
        if not ca and not cert and not key:
            if server_name:
                raise InvalidArgument(
                    f"{flag_prefix}-server-name", f"only applies with TLS: set {flag_prefix}-ca too"
                )
            return None
        if cert and not key:
            raise InvalidArgument(
                f"{flag_prefix}-key", f"missing: {flag_prefix}-cert was given, mutual TLS needs both"
            )
        if key and not cert:
            raise InvalidArgument(
                f"{flag_prefix}-cert", f"missing: {flag_prefix}-key was given, mutual TLS needs both"
            )
        return cls(
            Path(ca) if ca else None,
            Path(cert) if cert else None,
            Path(key) if key else None,
            server_name or None,
            flag_prefix,
        )


def secure_or_insecure_channel(
    target: str, tls: ClientTLS | None, options: Sequence[tuple[str, object]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to `target`: TLS when `tls` is set, plaintext otherwise."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, tls.credentials(), options=[*options, *tls.channel_options()])
