"""The trust boundary: a stdio MCP server supplied by a client runs inside its session's
workspace (one Execute through the executor), never on the agent's host.

The workspace is a bubblewrap sandbox (host /usr read-only, /workspace its own): the test puts
the MCP SDK and the test server into /workspace, exactly as a user would install a tool there."""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import tarfile
from pathlib import Path

from firebox.agent.v1 import agent_pb2 as A
from firebox.executor.v1 import executor_pb2 as E
from tests.integration.agent_mcp.conftest import TOOL_SERVER
from tests.support.agent_server import agent_stub, collect, executor_stub, kinds, running_agent
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle
from tests.support.fake_provider import shell_reply, text_reply, tool_reply

# What the SDK's server side imports, with the metadata it reads (names as installed).
SDK_PACKAGES = (
    "annotated_types anyio click h11 httpx2 idna mcp mcp_types opentelemetry pydantic pydantic_core "
    "python_multipart sniffio sse_starlette starlette typing_extensions.py typing_inspection uvicorn"
).split()
SDK_METADATA = (
    "annotated_types anyio click h11 httpx2 idna mcp mcp_types opentelemetry_api pydantic pydantic_core "
    "sniffio sse_starlette starlette typing_extensions typing_inspection uvicorn"
).split()


def _bundle() -> bytes:
    """A tarball of the test server and the SDK it needs, for /workspace."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.add(TOOL_SERVER, arcname="mcp_tool_server.py")
        for name in SDK_PACKAGES:
            tar.add(site / name, arcname=f"pylib/{name}")
        for name in SDK_METADATA:
            for info in site.glob(f"{name}-*.dist-info"):
                tar.add(info, arcname=f"pylib/{info.name}")
    return data.getvalue()


async def test_a_client_stdio_server_runs_in_the_session_workspace_not_on_the_agent_host(tmp_path, fake):
    assert not os.path.exists("/workspace/mcp-marker")  # noqa: ASYNC240 (no marker on the host)
    async with (
        running_executor_handle(tmp_path / "executor", backend="bwrap") as executor,
        running_agent(tmp_path / "agent", provider=fake.base_url, executor=executor.target) as agent,
    ):
        stub = agent_stub(agent)
        settings = A.SessionSettings(
            mcp_servers={
                "ws": A.McpServer(
                    command=f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
                    args=["/workspace/mcp_tool_server.py"],
                    env={"PYTHONPATH": "/workspace/pylib"},
                )
            }
        )
        session = (await stub.CreateSession(A.CreateSessionRequest(settings=settings))).session

        # First run: the server's files are not in the workspace yet, so it fails to start; the
        # run goes on with the other tools (and makes the workspace).
        fake.script(shell_reply("echo workspace-only > /workspace/mcp-marker"), text_reply("ready"))
        events = await collect(
            stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="set up"))
        )
        assert kinds(events)[-1] == "run_completed"
        assert not [t for t in fake.requests[0]["tools"] if t["function"]["name"].startswith("mcp__")]
        listed = await stub.ListTools(A.ListToolsRequest(session_id=session.id))
        ws = next(s for s in listed.mcp_servers if s.name == "ws")
        assert ws.origin == A.MCP_SERVER_ORIGIN_SESSION and not ws.ready

        workspace_id = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id))
        ).session.workspace_id
        ex = executor_stub(executor.target)
        bundle = _bundle()
        await ex.UploadFile(
            iter([E.UploadFileRequest(workspace_id=workspace_id, path="mcp.tgz", data=bundle)])
        )
        unpacked = await execute(ex, workspace_id, script="tar xzf mcp.tgz && rm mcp.tgz")
        assert unpacked.exit_code == 0, unpacked.stderr

        # Second run: started in the workspace on next use.
        fake.reset()
        fake.script(tool_reply(("mcp__ws__where", {}, "where")), text_reply("done"))
        events = await collect(
            stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="where?"))
        )
        assert kinds(events)[-1] == "run_completed"
        finished = {
            e.tool_call_finished.tool_call_id: e.tool_call_finished
            for e in events
            if e.HasField("tool_call_finished")
        }
        where = json.loads(finished["where"].result)
        assert where["marker"] == "workspace-only"
        assert where["cwd"] == "/workspace"
        assert where["hostname"] != socket.gethostname() or where["pid"] < 100  # its own namespaces

        listed = await stub.ListTools(A.ListToolsRequest(session_id=session.id))
        tool = next(t for t in listed.tools if t.name == "mcp__ws__where")
        assert (tool.source, tool.mcp_server) == (A.TOOL_SOURCE_MCP, "ws")
        # A session's own server is not trusted to declare tools read-only.
        assert next(s for s in listed.mcp_servers if s.name == "ws").ready
        # Deleting the session stops its server with its workspace.
        await stub.DeleteSession(A.DeleteSessionRequest(session_id=session.id))
