"""`firebox workspaces … --via agent` and `exec --via agent` with the executor unreachable from
the CLI: everything goes through the agent, which forwards to its executor."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.support.cli import firebox

pytestmark = pytest.mark.docker


async def test_workspaces_via_agent_create_list_show_exec_delete_without_the_executor(
    agent, executor
) -> None:
    # The CLI's executor address is a closed port: only the agent can answer.
    via = {"agent": agent.target}
    created = await firebox("workspaces", "create", "through-agent", "--via", "agent", "--json", **via)
    assert created.code == 0, created.stderr
    workspace = json.loads(created.stdout)["workspace"]
    assert workspace["name"] == "through-agent" and workspace["status"] == "WORKSPACE_STATUS_RUNNING"
    # It really is on the executor.
    assert any(w.id == workspace["id"] for w in await executor.workspaces.list())

    listed = await firebox("workspaces", "list", "--via", "agent", "--json", **via)
    assert listed.code == 0, listed.stderr
    assert workspace["id"] in [w["id"] for w in json.loads(listed.stdout)["workspaces"]]

    shown = await firebox("workspaces", "show", "through-agent", "--via", "agent", **via)
    assert shown.code == 0, shown.stderr
    assert workspace["id"] in shown.text

    ran = await firebox("exec", "--via", "agent", "-w", workspace["id"], "--", "echo", "via-agent", **via)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"via-agent\n"

    deleted = await firebox("workspaces", "delete", "through-agent", "--via", "agent", **via)
    assert deleted.code == 0, deleted.stderr
    assert all(w.id != workspace["id"] for w in await executor.workspaces.list())
    missing = await firebox("workspaces", "show", "through-agent", "--via", "agent", **via)
    assert missing.code == 3
    assert "--via agent" in missing.error_line()

    # Without --via the executor is asked, and it is unreachable.
    direct = await firebox("workspaces", "list", **via)
    assert direct.code == 4


async def test_exec_via_agent_creates_the_default_workspace_through_the_agent(agent, executor) -> None:
    result = await firebox("exec", "--via", "agent", "--", "echo", "default-ws", agent=agent.target)
    assert result.code == 0, result.stderr
    assert result.stdout == b"default-ws\n"
    assert "default" in [w.name for w in await executor.workspaces.list()]


async def test_pause_and_resume_through_the_agent_and_the_cli(agent, executor) -> None:
    via = {"agent": agent.target}
    created = await firebox("workspaces", "create", "pausable", "--via", "agent", "--json", **via)
    assert created.code == 0, created.stderr
    paused = await firebox("workspaces", "pause", "pausable", "--via", "agent", "--json", **via)
    assert paused.code == 0, paused.stderr
    assert json.loads(paused.stdout)["workspace"]["status"] == "WORKSPACE_STATUS_PAUSED"
    ws_id = json.loads(created.stdout)["workspace"]["id"]
    assert (await executor.workspaces.get(ws_id)).state == "paused"
    refused = await firebox("exec", "--via", "agent", "-w", ws_id, "--", "true", **via)
    assert refused.code != 0 and "paused" in refused.stderr
    resumed = await firebox("workspaces", "resume", "pausable", "--via", "agent", **via)
    assert resumed.code == 0, resumed.stderr
    assert "running" in resumed.text
    ran = await firebox("exec", "--via", "agent", "-w", ws_id, "--", "echo", "on", **via)
    assert ran.stdout == b"on\n"
    assert (await firebox("workspaces", "delete", "pausable", "--via", "agent", **via)).code == 0


async def test_snapshot_fork_list_and_delete_through_the_agent_and_the_cli(agent, executor) -> None:
    via = {"agent": agent.target}
    created = await firebox("workspaces", "create", "snapped", "--via", "agent", "--json", **via)
    assert created.code == 0, created.stderr
    ws_id = json.loads(created.stdout)["workspace"]["id"]
    ran = await firebox("exec", "--via", "agent", "-w", ws_id, "--", "sh", "-c", "echo one > f", **via)
    assert ran.code == 0, ran.stderr
    snap = await firebox(
        "workspaces", "snapshot", "snapped", "--name", "first", "--via", "agent", "--json", **via
    )
    assert snap.code == 0, snap.stderr
    snapshot = json.loads(snap.stdout)["snapshot"]
    assert snapshot["workspaceId"] == ws_id and snapshot["name"] == "first"
    listed = await firebox("workspaces", "snapshots", "--via", "agent", **via)
    assert listed.code == 0 and snapshot["id"] in listed.text
    forked = await firebox("workspaces", "fork", "first", "the-fork", "--via", "agent", "--json", **via)
    assert forked.code == 0, forked.stderr
    fork = json.loads(forked.stdout)["workspace"]
    assert fork["parentSnapshotId"] == snapshot["id"] and fork["name"] == "the-fork"
    cat = await firebox("exec", "--via", "agent", "-w", fork["id"], "--", "cat", "f", **via)
    assert cat.stdout == b"one\n"
    deleted = await firebox("workspaces", "delete-snapshot", "first", "--via", "agent", **via)
    assert deleted.code == 0, deleted.stderr
    assert not await executor.workspaces.list_snapshots()
    for name in ("the-fork", "snapped"):
        assert (await firebox("workspaces", "delete", name, "--via", "agent", **via)).code == 0


async def test_create_with_idle_timeout_and_ttl_shows_when_it_stops_and_goes(agent, executor) -> None:
    via = {"agent": agent.target}
    created = await firebox(
        "workspaces",
        "create",
        "expiring",
        "--idle-timeout",
        "600",
        "--ttl",
        "3600",
        "--via",
        "agent",
        "--json",
        **via,
    )
    assert created.code == 0, created.stderr
    workspace = json.loads(created.stdout)["workspace"]
    assert workspace["idleTimeout"] == "600s" and workspace["ttl"] == "3600s"
    assert workspace["stopTime"] and workspace["deleteTime"]
    shown = await firebox("workspaces", "show", "expiring", "--via", "agent", **via)
    assert "stops if idle at" in shown.text and "deleted at" in shown.text
    assert (await firebox("workspaces", "delete", "expiring", "--via", "agent", **via)).code == 0


async def test_create_from_a_devcontainer_folder_prints_its_setup_output(agent, executor, tmp_path) -> None:
    folder = tmp_path / "project" / ".devcontainer"
    folder.mkdir(parents=True)
    (folder / "devcontainer.json").write_text(
        '{\n  // the project\'s toolchain\n  "image": "firebox-busybox:latest",\n'
        '  "postCreateCommand": "echo set-up-done",\n}\n'
    )
    via = {"agent": agent.target}
    created = await firebox(
        "workspaces",
        "create",
        "from-devc",
        "--devcontainer",
        str(tmp_path / "project"),
        "--via",
        "agent",
        **via,
    )
    assert created.code == 0, created.stderr
    # The command's output streamed to stderr under its name as it ran; the result on stdout.
    assert "--- postCreateCommand\nset-up-done\n" in created.stderr, created.stderr
    assert "postCreateCommand: exit 0" in created.text
    assert (await firebox("workspaces", "delete", "from-devc", "--via", "agent", **via)).code == 0
    refused = await firebox("workspaces", "create", "--devcontainer", str(tmp_path / "nowhere"), **via)
    assert refused.code == 2


async def test_create_from_a_devcontainer_with_a_dockerfile_sends_its_context_and_builds(
    agent, executor, tmp_path
) -> None:
    """The CLI sends the folder build.context names (here the project, one up from the
    Dockerfile): the image is built from it through the agent, and the build's output shown."""
    project = tmp_path / "project"
    (project / ".devcontainer").mkdir(parents=True)
    (project / "hello.txt").write_text("hello from the context\n")
    (project / ".devcontainer" / "Dockerfile").write_text(
        "FROM firebox-busybox:latest\nCOPY hello.txt /opt/hello.txt\n"
    )
    (project / ".devcontainer" / "devcontainer.json").write_text(
        '{"build": {"dockerfile": "Dockerfile", "context": ".."}, "postCreateCommand": "cat /opt/hello.txt"}'
    )
    (project / "nonce").write_text(secrets.token_hex(8))  # a build of its own, not a cached image
    via = {"agent": agent.target}
    shown = await firebox(
        "workspaces", "create", "shown", "--devcontainer", str(project), "--via", "agent", **via
    )
    assert shown.code == 0, shown.stderr
    # The build's output streamed as the engine wrote it, then the command's.
    assert "--- build\n" in shown.stderr and "COPY hello.txt /opt/hello.txt" in shown.stderr, shown.stderr
    assert shown.stderr.index("--- build") < shown.stderr.index(
        "--- postCreateCommand\nhello from the context"
    )
    assert (await firebox("workspaces", "delete", "shown", "--via", "agent", **via)).code == 0
    created = await firebox(
        "workspaces", "create", "built", "--devcontainer", str(project), "--via", "agent", "--json", **via
    )
    assert created.code == 0, created.stderr
    response = json.loads(created.stdout)
    assert [c["name"] for c in response["setup"]] == ["build", "postCreateCommand"]
    assert response["setup"][1]["stdout"] == "hello from the context\n"
    assert (await firebox("workspaces", "delete", "built", "--via", "agent", **via)).code == 0
    # A Dockerfile outside the context cannot be sent: said before anything is asked.
    (project / ".devcontainer" / "devcontainer.json").write_text(
        '{"build": {"dockerfile": "../../Dockerfile"}}'
    )
    refused = await firebox("workspaces", "create", "--devcontainer", str(project), **via)
    assert refused.code == 2 and "outside build.context" in refused.stderr, refused.stderr
