"""Domain errors that carry their gRPC status code from where they arise to the edge.

Domain code raises these; `firebox.common.server` turns them into statuses in one place. Anything
else that escapes a handler is a bug: it is logged with its traceback and reported as INTERNAL.
"""

from __future__ import annotations

import grpc


class FireboxError(Exception):
    """Base of every error a client may see; `code` is the gRPC status it becomes."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(FireboxError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field


class NotFound(FireboxError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(FireboxError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(FireboxError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(FireboxError):
    code = grpc.StatusCode.ABORTED


class ResourceExhausted(FireboxError):
    """Out of a bounded resource; `retry_after` (seconds) travels to the client as the status's
    google.rpc.RetryInfo detail when set."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(FireboxError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(FireboxError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PermissionDenied(FireboxError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(FireboxError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Cancelled(FireboxError):
    code = grpc.StatusCode.CANCELLED
