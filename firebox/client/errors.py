"""The one exception a client call raises for a failed RPC: its status code, the server's message,
and which service and method it came from."""

from __future__ import annotations

import re

import grpc


class FireboxRpcError(Exception):
    """A call to the agent or the executor failed with a gRPC status.

    `code` is the status, `details` the server's message (or gRPC's own, when the server was never
    reached), `service` is "agent" or "executor", `target` the address called and `method` the RPC.
    """

    def __init__(
        self, code: grpc.StatusCode, details: str, *, service: str, target: str, method: str
    ) -> None:
        self.code = code
        self.details = details
        self.service = service
        self.target = target
        self.method = method
        super().__init__(f"{method} on the {service} at {target}: {code.name}: {details}")

    @classmethod
    def from_grpc(cls, exc: grpc.RpcError, *, service: str, target: str, method: str) -> FireboxRpcError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return cls(
            code or grpc.StatusCode.UNKNOWN, details or "", service=service, target=target, method=method
        )

    @property
    def unreachable(self) -> bool:
        """The service could not be reached at all (as opposed to answering with UNAVAILABLE)."""
        return self.code == grpc.StatusCode.UNAVAILABLE and _looks_like_transport_failure(self.details)

    def reason(self) -> str:
        """The server's message, or for transport failures a short cause a person recognises."""
        if self.unreachable:
            return _transport_cause(self.details)
        return self.details or self.code.name.lower().replace("_", " ")


_TRANSPORT_MARKERS = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "name resolution",
    "socket closed",
    "connections to all backends failing",
    "connection reset",
    "handshake",
    "ssl",
    "tls",
    "unreachable",
    "timed out",
    "timeout",
)


def _looks_like_transport_failure(details: str) -> bool:
    lowered = details.lower()
    return any(marker in lowered for marker in _TRANSPORT_MARKERS)


def _transport_cause(details: str) -> str:
    lowered = details.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "dns resolution failed" in lowered or "name resolution" in lowered:
        return "the host name does not resolve"
    if "handshake" in lowered or "ssl" in lowered or "tls" in lowered:
        match = re.search(r"(handshake[^;]*|ssl[^;]*|tls[^;]*)", details, re.IGNORECASE)
        return f"TLS failed ({match.group(1).strip() if match else details})"
    if "timed out" in lowered or "timeout" in lowered:
        return "connection timed out"
    if "connection reset" in lowered or "socket closed" in lowered:
        return "the connection was closed"
    return details
