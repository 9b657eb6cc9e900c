"""A container health check: ask a Firebox service's gRPC health service whether it is SERVING.

    python -m firebox.common.healthprobe [--service NAME] [--timeout S] [--tls-ca PEM
        [--tls-cert PEM --tls-key PEM] [--tls-server-name NAME]] HOST:PORT

Exit 0 when the status is SERVING, 1 otherwise (not serving, unreachable, timed out, bad TLS
files) — the contract of Docker's HEALTHCHECK. One line on stdout says what was found. Kept to the
sync grpc API and no logging setup so that it starts fast enough to run every few seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.common.errors import FireboxError
from firebox.common.tls import ClientTLS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firebox.common.healthprobe",
        description="Exit 0 when the gRPC health service at TARGET reports SERVING, else 1.",
    )
    parser.add_argument("target", metavar="HOST:PORT")
    parser.add_argument("--service", default="", help="service name to check (default: the whole server)")
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)"
    )
    parser.add_argument("--tls-ca", help="CA that signed the server certificate; turns on TLS")
    parser.add_argument("--tls-cert", help="client certificate, when the server requires mutual TLS")
    parser.add_argument("--tls-key", help="client key, when the server requires mutual TLS")
    parser.add_argument("--tls-server-name", help="name to check in the server certificate")
    return parser


def probe(
    target: str, *, service: str = "", timeout: float = 3.0, tls: ClientTLS | None = None
) -> tuple[bool, str]:
    """Check once; returns (serving, what was found)."""
    if tls is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, tls.credentials(), options=tls.channel_options())
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return False, f"{target}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{target}: {status}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe from the command line; the exit code is the verdict."""
    args = _parser().parse_args(argv)
    try:
        tls = ClientTLS.from_settings(
            args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name, flag_prefix="--tls"
        )
        serving, found = probe(args.target, service=args.service, timeout=args.timeout, tls=tls)
    except FireboxError as exc:
        print(f"healthprobe: {exc.message}", file=sys.stderr)
        return 1
    print(found)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
