"""A Docker Engine API proxy that passes the calls Firebox's executor needs and refuses the rest.

    python -m firebox.deploy.docker_proxy --listen 0.0.0.0:2375 --socket /var/run/docker.sock

The executor then uses DOCKER_HOST=tcp://PROXY:2375 and never holds the engine's socket.
Allowed (any /vX.Y prefix): GET|HEAD /_ping, GET /version; containers list, inspect, create,
start (attached, to read the workspace's ready line), stop, kill, wait, pause, unpause, exec,
delete; exec start (the hijacked stdin/stdout stream), resize,
inspect; volumes list, create, inspect, delete; images list, inspect and pull; commit into the
firebox-snapshot repository and deleting its images (snapshots). Everything else is refused with
403: build, other commits, archive (copying files in or out), export, networks, swarm, services,
secrets, configs, plugins, system, events. A container create is parsed as JSON (the engine's
decoder matches keys case-insensitively, so this does too) and refused when it asks for
privileges: privileged mode, host namespaces, bind mounts, devices, dangerous capabilities,
unconfined security profiles, volumes of other containers.

What this does not do: tell Firebox's containers from others on the same engine — exec, stop and
delete are allowed on any container by id. Run the executor against an engine that hosts nothing
else, or rootless Docker (docs/deploy.md).

HTTP/1.1 only, one upstream connection per request. Request heads and bodies are bounded; a
hijacked exec stream (101 Switching Protocols, or Docker's raw-stream 200) becomes a byte tunnel
with half-closes passed on, so end of stdin reaches the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
COPY_CHUNK = 256 * 1024
IDLE_TIMEOUT_SECONDS = 300.0

# Where the executor's snapshots live (executor_service/backends/docker.py).
SNAPSHOT_REPOSITORY = "firebox-snapshot"
_VERSION_PREFIX = re.compile(r"^/v\d+\.\d+(?=/)")
_NAME = r"[A-Za-z0-9_.-]+"
_ALLOWED: dict[str, list[re.Pattern[str]]] = {
    "GET": [
        re.compile(p)
        for p in (
            r"^/_ping$",
            r"^/version$",
            r"^/containers/json$",
            rf"^/containers/{_NAME}/json$",
            rf"^/exec/{_NAME}/json$",
            r"^/volumes$",
            rf"^/volumes/{_NAME}$",
            r"^/images/.+/json$",
            # Snapshots are images labelled by the executor; listing shows labels only.
            r"^/images/json$",
        )
    ],
    "POST": [
        re.compile(p)
        for p in (
            r"^/containers/create$",
            rf"^/containers/{_NAME}/(start|stop|kill|wait|exec|attach|pause|unpause)$",
            rf"^/exec/{_NAME}/(start|resize)$",
            r"^/images/create$",
            # A snapshot: a commit into the snapshot repository only (checked in check_request),
            # and the volume its /workspace copy goes to.
            r"^/commit$",
            r"^/volumes/create$",
        )
    ],
    "DELETE": [
        re.compile(p)
        for p in (
            rf"^/containers/{_NAME}$",
            rf"^/volumes/{_NAME}$",
            rf"^/images/{SNAPSHOT_REPOSITORY}:{_NAME}$",
        )
    ],
}
_ALLOWED["HEAD"] = _ALLOWED["GET"]

_HOST_NAMESPACE_KEYS = ("pidmode", "ipcmode", "utsmode", "usernsmode", "cgroupnsmode")
_DANGEROUS_CAPS = {
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_BOOT",
    "SYS_TIME",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "BPF",
    "PERFMON",
    "MKNOD",
    "SYSLOG",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
}


class Refused(Exception):
    """The request is not allowed; the message says why."""


def _keys_folded(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: keys lower-cased, because the engine's decoder (Go's encoding/json)
    matches field names case-insensitively — and also folds U+017F to 's' and the Kelvin sign to 'k',
    so any non-ASCII key is refused. A key repeated (after folding) is refused too: Go keeps the
    last one, and a check must see exactly what the engine will."""
    folded: dict[str, Any] = {}
    for key, value in pairs:
        if not key.isascii():
            raise Refused(f"non-ASCII key {key!r} in the request body")
        lowered = key.lower()
        if lowered in folded:
            raise Refused(f"key {key!r} repeated in the request body")
        folded[lowered] = value
    return folded


def check_container_create(body: bytes) -> None:
    """Refuse a container create that would reach the host. Raises Refused."""
    try:
        spec = json.loads(body or b"{}", object_pairs_hook=_keys_folded)
    except ValueError as exc:
        raise Refused(f"container create body is not JSON: {exc}") from None
    host = spec.get("hostconfig") if isinstance(spec, dict) else None
    if host is None:
        return
    if not isinstance(host, dict):
        raise Refused("HostConfig is not an object")
    if host.get("privileged"):
        raise Refused("privileged containers are not allowed")
    for key in _HOST_NAMESPACE_KEYS:
        if str(host.get(key) or "").lower() == "host":
            raise Refused(f"HostConfig.{key}=host is not allowed")
    network = str(host.get("networkmode") or "").lower()
    if network == "host" or network.startswith("container:"):
        raise Refused(f"HostConfig.NetworkMode={network} is not allowed")
    if host.get("binds"):
        raise Refused("bind mounts (HostConfig.Binds) are not allowed")
    for mount in host.get("mounts") or []:
        kind = str(mount.get("type") or "").lower() if isinstance(mount, dict) else ""
        if kind not in ("volume", "tmpfs"):
            raise Refused(f"mount type {kind or '(none)'} is not allowed; only volume and tmpfs")
    for key in ("devices", "devicerequests", "devicecgrouprules", "volumesfrom"):
        if host.get(key):
            raise Refused(f"HostConfig.{key} is not allowed")
    for cap in host.get("capadd") or []:
        if str(cap).upper().removeprefix("CAP_") in _DANGEROUS_CAPS:
            raise Refused(f"capability {cap} is not allowed")
    for option in host.get("securityopt") or []:
        if "unconfined" in str(option).lower():
            raise Refused(f"security option {option} is not allowed")


def check_request(method: str, target: str, body: bytes) -> None:
    """Refuse what the executor does not need. Raises Refused."""
    path = target.split("?", 1)[0]
    if any(segment in (".", "..") for segment in path.split("/")) or "%" in path or "//" in path:
        # The engine's router would clean or decode these into another path than the one checked.
        raise Refused(f"path {path!r} is not in canonical form")
    api = _VERSION_PREFIX.sub("", path)
    if not any(pattern.match(api) for pattern in _ALLOWED.get(method, ())):
        raise Refused(f"{method} {api} is not allowed through this proxy")
    if method == "POST" and api == "/containers/create":
        check_container_create(body)
    if method == "POST" and api == "/commit":
        query = urllib.parse.parse_qs(target.partition("?")[2])
        if query.get("repo") != [SNAPSHOT_REPOSITORY]:
            raise Refused(f"commits go to the {SNAPSHOT_REPOSITORY} repository only")


@dataclass
class _Request:
    method: str
    target: str
    head: bytes
    headers: dict[str, str]
    body: bytes


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_SECONDS)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise Refused("connection closed in the middle of a request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise Refused(f"request head larger than {MAX_HEAD_BYTES} bytes") from None
    return head


def _parse_headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Refused(f"malformed header line {line!r}")
        key = name.strip().lower()
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise Refused(f"header {key} repeated")
        headers[key] = value.strip()
    return lines[0], headers


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    head = await _read_head(reader)
    if head is None:
        return None
    first, headers = _parse_headers(head)
    parts = first.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refused(f"malformed request line {first!r}")
    method, target, _ = parts
    if "transfer-encoding" in headers:
        raise Refused("chunked request bodies are not accepted; send Content-Length")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise Refused("bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise Refused(f"request body larger than {MAX_BODY_BYTES} bytes")
    body = await reader.readexactly(length) if length else b""
    return _Request(method, target, head, headers, body)


async def _refuse(writer: asyncio.StreamWriter, message: str) -> None:
    payload = json.dumps({"message": f"firebox docker proxy: {message}"}).encode()
    writer.write(
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on."""
    try:
        while chunk := await reader.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _copy_exactly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    while length > 0:
        chunk = await reader.read(min(COPY_CHUNK, length))
        if not chunk:
            raise ConnectionError("engine closed the response early")
        writer.write(chunk)
        await writer.drain()
        length -= len(chunk)


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the empty line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    break
            await writer.drain()
            return
        await _copy_exactly(reader, writer, size + 2)


class DockerProxy:
    """Serves the filtered API on a TCP address, forwarding to the engine's unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await _read_request(client_reader)
                    if request is None:
                        return
                    check_request(request.method, request.target, request.body)
                except Refused as refused:
                    print(f"refused: {refused}", file=sys.stderr, flush=True)
                    await _refuse(client_writer, str(refused))
                    return
                keep_open = await self._forward(request, client_reader, client_writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        finally:
            client_writer.close()
            with contextlib.suppress(Exception):
                await client_writer.wait_closed()

    async def _forward(
        self, request: _Request, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> bool:
        """Send one request upstream and its response back; False when the client connection is
        used up (a tunnel, or a response delimited by close)."""
        print(f"{request.method} {request.target}", file=sys.stderr, flush=True)
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(
            self.socket_path, limit=MAX_HEAD_BYTES
        )
        try:
            upstream_writer.write(request.head + request.body)
            await upstream_writer.drain()
            head = await upstream_reader.readuntil(b"\r\n\r\n")
            status_line, headers = _parse_headers(head)
            status = int(status_line.split(" ")[1])
            client_writer.write(head)
            await client_writer.drain()
            hijacked = status == 101 or headers.get("content-type", "").startswith(
                ("application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream")
            )
            if hijacked:
                await asyncio.gather(
                    _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
                )
                return False
            if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                return True
            if headers.get("transfer-encoding", "").lower() == "chunked":
                await _copy_chunked(upstream_reader, client_writer)
                return headers.get("connection", "").lower() != "close"
            if "content-length" in headers:
                await _copy_exactly(upstream_reader, client_writer, int(headers["content-length"]))
                return headers.get("connection", "").lower() != "close"
            await _pipe(upstream_reader, client_writer)
            return False
        finally:
            upstream_writer.close()
            with contextlib.suppress(Exception):
                await upstream_writer.wait_closed()


async def serve(listen: str, socket_path: str) -> None:
    """Serve until cancelled."""
    host, _, port = listen.rpartition(":")
    proxy = DockerProxy(socket_path)
    server = await asyncio.start_server(proxy.handle, host or "0.0.0.0", int(port), limit=MAX_HEAD_BYTES)
    print(f"docker proxy: {listen} -> {socket_path}", file=sys.stderr, flush=True)
    # As PID 1 in a container, SIGTERM has no default action: stop on it explicitly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: `python -m firebox.deploy.docker_proxy`."""
    parser = argparse.ArgumentParser(
        prog="python -m firebox.deploy.docker_proxy",
        description="Docker Engine API proxy limited to what the Firebox executor needs.",
    )
    parser.add_argument(
        "--listen", default="0.0.0.0:2375", help="HOST:PORT to serve on (default 0.0.0.0:2375)"
    )
    parser.add_argument("--socket", default="/var/run/docker.sock", help="the engine's unix socket")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.socket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
