"""The agent on PostgreSQL (--database-url): runs and sessions land in the shared database."""

from __future__ import annotations

from pathlib import Path

from firebox.agent.v1 import agent_pb2
from tests.support.agent_server import agent_stub, collect, new_session, running_agent, text_of
from tests.support.fake_provider import FakeProvider, text_reply
from tests.support.postgres import PostgresServer


async def test_an_agent_on_postgresql_keeps_sessions_for_the_next_agent(
    tmp_path: Path, fake: FakeProvider, postgres_server: PostgresServer
):
    url = postgres_server.create_database()
    async with running_agent(tmp_path / "a", fake=fake, database_url=url) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("hello ", "there"))
        events = await collect(
            stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
        )
        assert text_of(events) == "hello there"
        assert not (tmp_path / "a" / "agent.db").exists()  # nothing went to the SQLite default
    async with running_agent(tmp_path / "b", fake=fake, database_url=url) as other:
        got = await agent_stub(other).GetSession(
            agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True)
        )
        assert [m.content for m in got.messages] == ["hi", "hello there"]
        run = await agent_stub(other).GetRun(agent_pb2.GetRunRequest(run_id=events[0].run_id))
        assert run.run.status == agent_pb2.RUN_STATUS_COMPLETED
