"""Fixtures of the agent's integration tests: a scripted fake provider and a real agent on it.

Every test runs against both wire formats (`wire`: openai, anthropic), each with its own fake
server and the agent's --provider set to match; a test that scripts OpenAI-only steps (raw
chunks) says `@pytest.mark.parametrize("wire", ["openai"])`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_service.server import Agent
from firebox.agent.v1 import agent_pb2_grpc
from tests.support.agent_server import agent_stub, running_agent
from tests.support.fake_provider import FakeProvider


@pytest.fixture(params=["openai", "anthropic"])
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def fake(wire: str) -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider.start(wire=wire)
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture
async def agent(tmp_path: Path, fake: FakeProvider) -> AsyncIterator[Agent]:
    async with running_agent(tmp_path / "agent", fake=fake) as running:
        yield running


@pytest.fixture
def stub(agent: Agent) -> agent_pb2_grpc.AgentServiceStub:
    return agent_stub(agent)
