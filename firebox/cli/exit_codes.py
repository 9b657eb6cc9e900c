"""Exit codes scripts can rely on (docs/cli.md lists them), and how gRPC statuses map onto them."""

from __future__ import annotations

import grpc

OK = 0
# A failure not covered below: a run that failed, an internal server error.
FAILURE = 1
# Bad flags or arguments, or input the server refused (INVALID_ARGUMENT, OUT_OF_RANGE).
USAGE = 2
NOT_FOUND = 3
# The service could not be reached, was not serving, or did not answer in time.
UNAVAILABLE = 4
# No token, a wrong token, or not allowed.
UNAUTHENTICATED = 5
# The state does not allow it now: already exists, busy session, stopped workspace, active run.
CONFLICT = 6
# A server limit was hit (RESOURCE_EXHAUSTED).
EXHAUSTED = 7
# Ctrl-C: the run was cancelled, or following it was abandoned.
INTERRUPTED = 130

# `firebox exec` passes the command's own status through, so its own failures use the codes
# `docker run` and coreutils' `timeout` made familiar instead of the ones above.
EXEC_TIMED_OUT = 124
EXEC_FAILED = 125

_BY_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: USAGE,
    grpc.StatusCode.OUT_OF_RANGE: USAGE,
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS: CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: CONFLICT,
    grpc.StatusCode.ABORTED: CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXHAUSTED,
    grpc.StatusCode.CANCELLED: INTERRUPTED,
}


def for_status(code: grpc.StatusCode) -> int:
    """The exit code for a call that failed with `code`."""
    return _BY_STATUS.get(code, FAILURE)
