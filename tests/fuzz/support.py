"""What every fuzz test checks per call: the server answered with a status a client can act on.

INTERNAL and UNKNOWN mean an exception escaped a handler (a bug); DEADLINE_EXCEEDED on a unary
call with a generous deadline means the server hung on the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firebox.common.limits import MAX_STATUS_CHARS

# docs/reliability.md promises at least this many generated messages per RPC; every fuzz test
# checks it reached the count (Outcomes.calls), derandomized so CI sees the same ones.
MESSAGES_PER_RPC = 1000
FUZZ = settings(
    max_examples=MESSAGES_PER_RPC,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# The generic RPC fuzz sends a batch of messages per example: hypothesis's per-example work (and,
# for unary RPCs, the round trips, sent concurrently) is paid 50 times instead of 1,000.
BATCH = 20
FUZZ_BATCHED = settings(FUZZ, max_examples=MESSAGES_PER_RPC // BATCH)

BUG_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
UNARY_DEADLINE = 10.0
STREAM_DEADLINE = 20.0


class Outcomes:
    """Counts the status codes seen, for the failure message and the report."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    def refused(self, exc: grpc.RpcError, request: Any, allow_deadline: bool = False) -> None:
        """Count and check a call's error status."""
        code = exc.code()
        self.codes[code.name] += 1
        assert code not in BUG_CODES, f"{code.name}: {exc.details()!r} for {short(request)}"
        assert len(exc.details() or "") <= MAX_STATUS_CHARS, f"long status for {short(request)}"
        if not allow_deadline:
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"hung on {short(request)}"

    def unary(self, method: Callable[..., Any], request: Any, **kwargs: Any) -> Any:
        """Call and check; returns the response, or None when the call was refused."""
        try:
            response = method(request, timeout=UNARY_DEADLINE, **kwargs)
        except grpc.RpcError as exc:
            self.refused(exc, request)
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
            self.refused(exc, request, allow_deadline)
            return got, False
        self.codes["OK"] += 1
        return got, True

    def batch(self, stub: Any, method: MethodDescriptor, requests: list[Any]) -> list[tuple[Any, Any]]:
        """Send each request (a list of messages for a client stream) to `method`; return the
        (request, answer) pairs that succeeded. The answer is the response, or the list of
        responses of a server stream. Unary calls go out together; streams one after another,
        each bounded by STREAM_DEADLINE (a stream that hangs is a failure, not a slow test)."""
        call = getattr(stub, method.name)
        accepted: list[tuple[Any, Any]] = []
        if not method.client_streaming and not method.server_streaming:
            futures = [(r, call.future(r, timeout=UNARY_DEADLINE)) for r in requests]
            for request, future in futures:
                try:
                    response = future.result()
                except grpc.RpcError as exc:
                    self.refused(exc, request)
                    continue
                self.codes["OK"] += 1
                accepted.append((request, response))
            return accepted
        for request in requests:
            sent = iter(request) if method.client_streaming else request
            if method.server_streaming:
                responses, ok = self.stream(call(sent, timeout=STREAM_DEADLINE), request)
                if ok:
                    accepted.append((request, responses))
                continue
            try:
                response = call(sent, timeout=STREAM_DEADLINE)
            except grpc.RpcError as exc:
                self.refused(exc, request)
                continue
            self.codes["OK"] += 1
            accepted.append((request, response))
        return accepted


def short(message: Any, limit: int = 600) -> str:
    text = repr(message)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return response.status == health_pb2.HealthCheckResponse.SERVING


def unfuzzed(service: ServiceDescriptor, fuzzed: Mapping[str, Callable[..., Any]]) -> list[str]:
    """RPCs of the service (from its descriptor) that no fuzz test covers; and covered names that
    are not RPCs (a renamed one). `fuzzed` maps each RPC to the test function that fuzzes it."""
    methods = {m.name for m in service.methods}
    missing = [
        f"{name}: no fuzz test (add a request builder to GENERIC)" for name in sorted(methods - set(fuzzed))
    ]
    stale = [f"{name}: not an RPC of {service.name}" for name in sorted(set(fuzzed) - methods)]
    return missing + stale


@dataclass(frozen=True)
class Fuzzed:
    """How one RPC is fuzzed by a module's generic test: its requests (a list of messages for a
    client stream) built from the module's target, what an accepted call must satisfy (given the
    target, the request and the answer: a response, or a server stream's responses), and whether
    some generated requests must be accepted (True), none may be (False), or either (None: the
    outcome depends on the engine, e.g. a port forward to a port nothing listens on)."""

    requests: Callable[[Any], st.SearchStrategy[Any]]
    check: Callable[[Any, Any, Any], None]
    accepts: bool | None = True


def fuzz_rpc(target: Any, stub: Any, method: MethodDescriptor, fuzzed: Fuzzed) -> Outcomes:
    """MESSAGES_PER_RPC generated requests, BATCH per example over one channel; each accepted
    answer checked. The caller checks the server afterwards."""
    outcomes = Outcomes()

    @FUZZ_BATCHED
    @given(batch=st.lists(fuzzed.requests(target), min_size=BATCH, max_size=BATCH))
    def fuzz(batch: list[Any]) -> None:
        for request, answer in outcomes.batch(stub, method, batch):
            fuzzed.check(target, request, answer)

    fuzz()
    # The accepted path was reached too, where there is one.
    if fuzzed.accepts is not None:
        assert (outcomes.codes["OK"] >= 5) == fuzzed.accepts, dict(outcomes.codes)
    return outcomes
