"""What every fuzz test checks per call: the server answered with a status a client can act on.

INTERNAL and UNKNOWN mean an exception escaped a handler (a bug); DEADLINE_EXCEEDED on a unary
call with a generous deadline means the server hung on the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings

from firebox.common.limits import MAX_STATUS_CHARS

# The issue asks for at least 1,000 generated messages per RPC; derandomized so CI sees the same ones.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

BUG_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
UNARY_DEADLINE = 10.0


class Outcomes:
    """Counts the status codes seen, for the failure message and the report."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()

    def unary(self, method: Callable[..., Any], request: Any, **kwargs: Any) -> Any:
        """Call and check; returns the response, or None when the call was refused."""
        try:
            response = method(request, timeout=UNARY_DEADLINE, **kwargs)
        except grpc.RpcError as exc:
            code = exc.code()
            self.codes[code.name] += 1
            assert code not in BUG_CODES, f"{code.name}: {exc.details()!r} for {short(request)}"
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"hung on {short(request)}"
            assert len(exc.details() or "") <= MAX_STATUS_CHARS, f"long status for {short(request)}"
            return None
        self.codes["OK"] += 1
        return response

    def stream(
        self, responses: Iterable[Any], request: Any, allow_deadline: bool = False
    ) -> tuple[list[Any], bool]:
        """Drain a server stream and check its ending: (responses, ended with OK)."""
        got: list[Any] = []
        try:
            for response in responses:
                got.append(response)
        except grpc.RpcError as exc:
            code = exc.code()
            self.codes[code.name] += 1
            assert code not in BUG_CODES, f"{code.name}: {exc.details()!r} for {short(request)}"
            assert len(exc.details() or "") <= MAX_STATUS_CHARS, f"long status for {short(request)}"
            if not allow_deadline:
                assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"hung on {short(request)}"
            return got, False
        self.codes["OK"] += 1
        return got, True


def short(message: Any, limit: int = 600) -> str:
    text = repr(message)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return response.status == health_pb2.HealthCheckResponse.SERVING
