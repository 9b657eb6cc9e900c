"""`firebox port-forward WORKSPACE LOCAL:REMOTE`: a local TCP port whose connections reach a port
inside a workspace (one ForwardPort stream each), like `kubectl port-forward`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from firebox.cli import exit_codes, output
from firebox.cli.app import App, CliError, describe
from firebox.client import FireboxRpcError
from firebox.client.aio import AsyncFireboxClient

CHUNK = 64 * 1024


def add_parser(subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "port-forward",
        parents=parents,
        help="forward a local port to a port inside a workspace",
        description=(
            "Listen on LOCAL (on --address) and connect each connection to REMOTE on the workspace's "
            "loopback interface, through the executor: it works with the workspace's network off. "
            "LOCAL 0 picks a free port. Runs until interrupted."
        ),
    )
    parser.add_argument("workspace", metavar="WORKSPACE", help="workspace id or name")
    parser.add_argument("ports", metavar="LOCAL:REMOTE", help="ports, e.g. 8080:80 (or just 8080 for both)")
    parser.add_argument(
        "--address", default="127.0.0.1", help="local address to listen on (default 127.0.0.1)"
    )
    parser.set_defaults(handler=run)


def parse_ports(text: str) -> tuple[int, int]:
    local_text, _, remote_text = text.partition(":")
    try:
        local, remote = int(local_text), int(remote_text or local_text)
    except ValueError:
        raise CliError(f"ports are LOCAL:REMOTE numbers, got {text!r}", exit_codes.USAGE) from None
    if not (0 <= local <= 65535 and 1 <= remote <= 65535):
        raise CliError(f"ports out of range in {text!r}", exit_codes.USAGE)
    return local, remote


def run(app: App, args: argparse.Namespace) -> int:
    local, remote = parse_ports(args.ports)
    try:
        asyncio.run(_serve(app, args.workspace, args.address, local, remote))
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(app: App, wanted: str, address: str, local: int, remote: int) -> None:
    async with AsyncFireboxClient(app.settings) as client:
        try:
            workspace = await client.find_workspace(wanted)
        except FireboxRpcError as error:
            raise CliError(describe(error), exit_codes.FAILURE) from None
        if workspace is None:
            raise CliError(f"no workspace with id or name {wanted!r}", exit_codes.NOT_FOUND)

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _relay(client, workspace.id, remote, reader, writer)

        try:
            server = await asyncio.start_server(connection, address, local)
        except OSError as exc:
            raise CliError(f"cannot listen on {address}:{local}: {exc}", exit_codes.FAILURE) from None
        bound = server.sockets[0].getsockname()[1]
        output.note(
            f"forwarding {address}:{bound} -> port {remote} in workspace {workspace.name or workspace.id}"
        )
        async with server:
            await server.serve_forever()


async def _relay(
    client: AsyncFireboxClient,
    workspace_id: str,
    port: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    try:
        connection = await client.forward_port(workspace_id, port)
    except FireboxRpcError as error:
        output.warn(describe(error))
        writer.close()
        return

    async def upstream() -> None:
        while data := await reader.read(CHUNK):
            await connection.send(data)
        await connection.close_write()

    sending = asyncio.create_task(upstream())
    try:
        async for data in connection:
            writer.write(data)
            await writer.drain()
    except (FireboxRpcError, ConnectionError) as error:
        output.warn(describe(error) if isinstance(error, FireboxRpcError) else str(error))
    finally:
        sending.cancel()
        connection.close()
        with contextlib.suppress(ConnectionError):
            writer.close()
            await writer.wait_closed()
