"""ForwardPort over real gRPC: an HTTP server started in a background execution, in a workspace
with no network, served through the executor; several connections at once; the CLI's
`firebox port-forward`."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from tests.support.cli import FIREBOX, cli_env
from tests.support.executor_client import LiveExecution, execute, first_request

pytestmark = pytest.mark.docker

PAGE = b"<h1>served from a workspace without network</h1>\n"


@pytest.fixture(scope="module")
async def web(stub, workspace):
    """busybox httpd on 127.0.0.1:8080 inside the shared workspace, as a background execution."""
    assert not workspace.policy.network
    await execute(
        stub, workspace.id, script=f"mkdir -p www && printf '%s' '{PAGE.decode()}' > www/index.html"
    )
    live = LiveExecution(
        stub, first_request(workspace.id, "exec httpd -f -p 127.0.0.1:8080 -h www", background=True)
    )
    first = await live.next()
    live.call.cancel()
    # Until it listens.
    for _ in range(50):
        probe = await execute(stub, workspace.id, script="wget -q -O - http://127.0.0.1:8080/ >/dev/null")
        if probe.exit_code == 0:
            break
        await asyncio.sleep(0.1)
    yield workspace
    await stub.StopExecution(
        pb.StopExecutionRequest(execution_id=first.execution_id, signal=pb.STOP_SIGNAL_KILL)
    )


async def fetch(stub, workspace_id: str, path: str = "/") -> bytes:
    async def requests():
        yield pb.ForwardPortRequest(
            workspace_id=workspace_id, port=8080, data=f"GET {path} HTTP/1.0\r\nHost: ws\r\n\r\n".encode()
        )

    return b"".join([r.data async for r in stub.ForwardPort(requests())])


async def test_forward_port_reaches_a_server_in_a_workspace_without_network(stub, web):
    response = await fetch(stub, web.id)
    assert response.startswith(b"HTTP/1.") and b" 200 " in response.split(b"\r\n")[0]
    assert response.endswith(PAGE)


async def test_several_connections_at_once(stub, web):
    responses = await asyncio.gather(*(fetch(stub, web.id) for _ in range(8)))
    assert all(r.endswith(PAGE) for r in responses)


async def test_a_closed_port_and_bad_requests_are_refused(stub, web):
    async def to(port: int, workspace_id: str = web.id):
        async def requests():
            yield pb.ForwardPortRequest(workspace_id=workspace_id, port=port)

        return [r async for r in stub.ForwardPort(requests())]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await to(8081)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "8081" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await to(70000)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await to(8080, "ws_missing")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_cli_port_forward_serves_the_page_on_a_local_port(executor, web):
    process = await asyncio.create_subprocess_exec(
        str(FIREBOX),
        "port-forward",
        web.id,
        "0:8080",
        env=cli_env(executor=executor.target),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert b"forwarding 127.0.0.1:" in line, line
        local = int(line.split(b"127.0.0.1:")[1].split()[0])

        def get() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10) as response:
                return response.read()

        pages = await asyncio.gather(*(asyncio.to_thread(get) for _ in range(4)))
        assert pages == [PAGE] * 4
    finally:
        process.terminate()
        await process.wait()
