"""TCP connections into a workspace's network namespace, for ForwardPort.

A workspace usually has no network at all (`network_mode: none`), so nothing outside it can
reach a port inside: the executor, root on the engine's host, opens the connection from a thread
that has entered the workspace's network namespace (setns). A socket stays in the namespace it
was made in, so the connection then works from anywhere in the executor, and nothing needs to be
in the image (no nc, socat or a helper).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading

from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.ports")

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 5.0
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _connect_in(namespace: str, port: int) -> socket.socket:
    """In the calling thread (a dedicated one): enter `namespace`, connect to the port on the
    loopback interface, and go back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(namespace, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            return _connect_local(port)
        finally:
            _setns(own)
    finally:
        os.close(own)


def _connect_local(port: int) -> socket.socket:
    last: OSError | None = None
    for host in ("127.0.0.1", "::1"):
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            # The IPv4 answer (refused, say) says more than a missing IPv6 loopback.
            last = last or exc
            continue
        sock.setblocking(False)
        return sock
    assert last is not None
    raise last


async def connect(namespace: str | None, port: int) -> socket.socket:
    """A non-blocking socket connected to `port` on the loopback interface of the network
    namespace at `namespace` (a /proc/PID/ns/net path; None: the executor's own).
    FailedPrecondition when nothing listens there or the namespace cannot be entered."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(sock: socket.socket | None, exc: BaseException | None) -> None:
        if done.cancelled():
            if sock is not None:
                sock.close()
        elif exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(sock)  # type: ignore[arg-type]

    def work() -> None:
        try:
            sock = _connect_in(namespace, port) if namespace else _connect_local(port)
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, sock, None)

    # A thread of its own, not the shared pool: it changes its network namespace for a moment.
    threading.Thread(target=work, name="forward-port-connect", daemon=True).start()
    try:
        return await done
    except (ConnectionRefusedError, TimeoutError) as exc:
        raise errors.FailedPrecondition(
            f"nothing accepts connections on port {port} in the workspace ({exc})"
        ) from None
    except PermissionError as exc:
        raise errors.FailedPrecondition(
            f"cannot enter the workspace's network namespace ({exc}): port forwarding needs the "
            "executor to run as root on the engine's host"
        ) from None
    except FileNotFoundError:
        raise errors.FailedPrecondition(
            "the workspace's network namespace is not visible to the executor (does it run in a "
            "container of its own?): port forwarding needs the executor on the engine's host"
        ) from None
    except OSError as exc:
        raise errors.Unavailable(f"cannot connect to port {port} in the workspace: {exc}") from None
