"""compose.yaml + compose.postgres.yaml on one host: PostgreSQL (the locally built firebox-postgres
image) turns healthy first, the agent keeps its sessions there instead of its SQLite file, and a
restarted agent still has them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from tests.support.deploy import (
    ComposeStack,
    compose_stack,
    container_health,
    grpcurl,
    have_tools,
    prepare_images,
    run,
    wait_healthy,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    env = {"FIREBOX_POSTGRES_PASSWORD": secrets.token_hex(16)}
    with compose_stack("compose.yaml", "compose.postgres.yaml", env=env) as deployed:
        yield deployed


def _psql(stack: ComposeStack, sql: str) -> str:
    return run(
        [
            "docker",
            "exec",
            "-e",
            f"PGPASSWORD={stack.env['FIREBOX_POSTGRES_PASSWORD']}",
            stack.container("postgres"),
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "firebox",
            "-d",
            "firebox",
            "-At",
            "-c",
            sql,
        ]
    ).stdout.strip()


def test_sessions_live_in_postgresql_and_outlive_the_agent(stack: ComposeStack) -> None:
    assert container_health(stack.container("postgres")) == "healthy"
    created = json.loads(
        grpcurl(stack.agent, "firebox.agent.v1.AgentService/CreateSession", data='{"title": "in-postgres"}')
    )
    session_id = created["session"]["id"]
    assert _psql(stack, f"SELECT count(*) FROM sessions WHERE id = '{session_id}'") == "1"
    # No SQLite file: the agent's config dir holds only its logs.
    listing = run(["docker", "exec", stack.container("agent"), "ls", "/var/lib/firebox/agent"]).stdout.split()
    assert "agent.db" not in listing, listing

    run(stack.compose("restart", "agent"), env=stack.env, timeout=120)
    wait_healthy([stack.container("agent")], within=120, describe="restarted agent")
    found = json.loads(
        grpcurl(
            stack.agent,
            "firebox.agent.v1.AgentService/GetSession",
            data=json.dumps({"session_id": session_id}),
        )
    )
    assert found["session"]["title"] == "in-postgres", found
