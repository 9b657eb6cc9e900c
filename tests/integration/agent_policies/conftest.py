"""Fixtures of the agent-policy tests: a scripted fake provider, a real executor (Docker) with
one named tool declared, and helpers to drive runs that wait for approvals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from firebox.agent.v1 import agent_pb2
from firebox.trace.v1 import trace_pb2
from tests.support.executor_server import delete_workspaces, running_executor
from tests.support.fake_provider import FakeProvider

TOOLS_FILE = {
    "tools": [
        {
            "name": "count_lines",
            "description": "Count the lines of a file in the workspace.",
            "args_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
                "additionalProperties": False,
            },
            "command": ["wc", "-l", "{path}"],
            "read_only": True,
        },
        {
            "name": "make_marker",
            "description": "Create a marker file.",
            "args_schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
            "command": ["touch", "{name}"],
        },
    ]
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider.start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    config_dir = tmp_path_factory.mktemp("executor")
    tools = config_dir / "tools.json"
    tools.write_text(json.dumps(TOOLS_FILE))
    async with running_executor(config_dir, backend="docker", tools_file=tools) as target:
        try:
            yield target
        finally:
            await asyncio.to_thread(delete_workspaces, target)


async def run_until_approval(call) -> tuple[list[agent_pb2.RunEvent], agent_pb2.ApprovalRequested | None]:
    """Read a SendMessage stream until an approval is requested (or the run ends)."""
    events: list[agent_pb2.RunEvent] = []
    async for response in call:
        events.append(response.event)
        if response.event.HasField("approval_requested"):
            return events, response.event.approval_requested
    return events, None


async def rest(call) -> list[agent_pb2.RunEvent]:
    return [r.event async for r in call]


def tool_results(events: list[agent_pb2.RunEvent]) -> dict[str, str]:
    return {
        e.tool_call_finished.tool_call_id: e.tool_call_finished.result
        for e in events
        if e.HasField("tool_call_finished")
    }


def log_records(config_dir: Path, kind: str = "feedback") -> list:
    """The training-log records of one kind, parsed strictly into their protos."""
    record_type = {"feedback": trace_pb2.FeedbackRecord, "generations": trace_pb2.GenerationRecord}[kind]
    records = []
    for path in sorted((config_dir / "logs").glob(f"{kind}-*.jsonl")):
        records.extend(json_format.Parse(line, record_type()) for line in path.read_text().splitlines())
    return records
