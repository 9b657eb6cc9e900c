"""A loopback TCP relay in front of a server, whose connections a test can cut: a real network
failure in the middle of a gRPC stream, after which new connections work again.

    proxy = await TcpProxy.start(agent.target)
    ... client on proxy.target ...
    await proxy.cut()        # every open connection is closed, both ways
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0

    @classmethod
    async def start(cls, upstream: str) -> TcpProxy:
        proxy = cls(upstream)
        proxy._server = await asyncio.start_server(proxy._relay, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, server_writer))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        try:
            await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        finally:
            self._writers.difference_update((client_writer, server_writer))

    async def cut(self) -> None:
        """Close every open connection at once."""
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()  # a reset, not a polite close: as when a network path dies
        self._writers.clear()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
