"""`firebox chat`, `sessions`, `runs` and `exec --via agent` as a real child process against a real
agent (on the scripted fake provider) and a real executor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.agent_server import running_agent
from tests.support.cli import finish, firebox, interrupt, start_firebox
from tests.support.fake_provider import FakeProvider, Hold, Reply, chunk, shell_reply, text_reply
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def fresh_script(fake: FakeProvider) -> None:
    fake.reset()


def targets(agent, executor) -> dict[str, str]:
    return {"agent": agent.target, "executor": executor.target}


def events_of(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines()]


async def test_one_shot_chat_streams_the_answer_and_exits_0(agent, executor, fake) -> None:
    fake.script(text_reply("Hello", ", ", "world"))
    result = await firebox("chat", "-m", "hi", **targets(agent, executor))
    assert result.code == 0, result.stderr
    assert result.text == "Hello, world\n"
    assert "session " in result.stderr


async def test_chat_reads_one_message_per_line_from_piped_stdin(agent, executor, fake) -> None:
    fake.script(text_reply("first"), text_reply("second"))
    result = await firebox("chat", stdin=b"hello\nagain\n", **targets(agent, executor))
    assert result.code == 0, result.stderr
    assert result.text == "first\nsecond\n"
    assert [r["messages"][-1]["content"] for r in fake.requests] == ["hello", "again"]


async def test_chat_shows_tool_calls_and_their_output_as_they_run(agent, executor, fake) -> None:
    fake.script(shell_reply("echo from-the-tool"), text_reply("All done"))
    result = await firebox("chat", "-m", "run it", **targets(agent, executor))
    assert result.code == 0, result.stderr
    text = result.text
    assert "▶ shell: echo from-the-tool\n" in text
    assert "from-the-tool\n✔ exit 0\n" in text
    assert text.endswith("All done\n")
    assert text.index("▶ shell") < text.index("All done")


async def test_chat_json_prints_every_event_as_proto_json_in_order(agent, executor, fake) -> None:
    fake.script(text_reply("a", "b"))
    result = await firebox("chat", "--json", "-m", "hi", **targets(agent, executor))
    assert result.code == 0, result.stderr
    events = events_of(result.stdout)
    indices = [int(e["index"]) for e in events]
    assert indices == list(range(1, len(events) + 1))
    assert "runStarted" in events[0] and "runCompleted" in events[-1]
    assert "".join(e["textDelta"]["text"] for e in events if "textDelta" in e) == "ab"


async def test_sessions_and_runs_commands_show_what_chat_did(agent, executor, fake) -> None:
    fake.script(text_reply("first answer"))
    created = await firebox(
        "sessions", "create", "--title", "cli-listing", "--json", **targets(agent, executor)
    )
    session_id = json.loads(created.stdout)["session"]["id"]
    chatted = await firebox("chat", session_id, "-m", "question", **targets(agent, executor))
    assert chatted.code == 0, chatted.stderr

    listed = await firebox("sessions", "list", "--json", **targets(agent, executor))
    assert session_id in [s["id"] for s in json.loads(listed.stdout)["sessions"]]

    shown = await firebox("sessions", "show", session_id, "--json", **targets(agent, executor))
    messages = json.loads(shown.stdout)["messages"]
    assert [m["role"] for m in messages] == ["ROLE_USER", "ROLE_ASSISTANT"]
    assert messages[1]["content"] == "first answer"

    runs = json.loads(
        (await firebox("runs", "list", session_id, "--json", **targets(agent, executor))).stdout
    )
    assert len(runs["runs"]) == 1
    run_id = runs["runs"][0]["id"]
    run = json.loads((await firebox("runs", "show", run_id, "--json", **targets(agent, executor))).stdout)[
        "run"
    ]
    assert run["status"] == "RUN_STATUS_COMPLETED"

    plain = await firebox("sessions", "show", session_id, **targets(agent, executor))
    assert "first answer" in plain.text

    deleted = await firebox("sessions", "delete", session_id, **targets(agent, executor))
    assert deleted.code == 0, deleted.stderr
    gone = await firebox("sessions", "show", session_id, **targets(agent, executor))
    assert gone.code == 3
    assert session_id in gone.error_line()


async def test_runs_attach_after_an_index_replays_only_the_later_events(agent, executor, fake) -> None:
    fake.script(text_reply("x", "y", "z"))
    first = await firebox("chat", "--json", "-m", "hi", **targets(agent, executor))
    events = events_of(first.stdout)
    run_id = events[0]["runId"]
    attached = await firebox("runs", "attach", run_id, "--after", "2", "--json", **targets(agent, executor))
    assert attached.code == 0, attached.stderr
    replayed = events_of(attached.stdout)
    assert replayed == events[2:]


async def test_ctrl_c_cancels_the_run_and_exits_130(agent, executor, fake) -> None:
    fake.script(
        Reply(steps=[chunk({"role": "assistant", "content": ""}), chunk({"content": "partial"}), Hold()])
    )
    process = await start_firebox("chat", "-m", "go slowly", **targets(agent, executor))
    assert process.stdout is not None
    seen = b""
    while b"partial" not in seen:
        seen += await asyncio.wait_for(process.stdout.read(64), 30)
    interrupt(process)
    result = await finish(process, limit=30)
    assert result.code == 130, result.stderr
    assert "cancelling the run" in result.stderr and "run cancelled" in result.stderr
    session_id = result.stderr.split("session ", 1)[1].split()[0]
    runs = json.loads(
        (await firebox("runs", "list", session_id, "--json", **targets(agent, executor))).stdout
    )
    assert runs["runs"][0]["status"] == "RUN_STATUS_CANCELLED"


async def test_chat_in_an_unknown_session_exits_3_with_one_line(agent, executor) -> None:
    result = await firebox("chat", "no-such-session", "-m", "hi", **targets(agent, executor))
    assert result.code == 3
    assert result.error_line().startswith("firebox: cannot get the session:")


async def test_exec_via_the_agent_runs_in_the_named_workspace(agent, executor) -> None:
    created = await firebox("workspaces", "create", "via-agent", "--json", **targets(agent, executor))
    workspace_id = json.loads(created.stdout)["workspace"]["id"]
    result = await firebox(
        "exec",
        "--via",
        "agent",
        "-w",
        workspace_id,
        "--",
        "sh",
        "-c",
        "cat; exit 4",
        stdin=b"through the agent",
        **targets(agent, executor),
    )
    assert result.code == 4, result.stderr
    assert result.stdout == b"through the agent"


async def test_status_shows_both_services_serving(agent, executor) -> None:
    result = await firebox("status", "--json", **targets(agent, executor))
    assert result.code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["agent"]["health"] == report["executor"]["health"] == "SERVING"
    assert report["agent"]["info"]["defaultModel"] == "fake-model"
    assert report["agent"]["info"]["executorTarget"] == executor.target


async def test_a_broken_stream_reconnects_after_the_last_event_with_no_gap_or_duplicate(
    agent, executor, fake
) -> None:
    held = Reply(
        steps=[
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "before"}),
            Hold(),
            chunk({"content": " after"}),
            chunk({}, finish_reason="stop"),
        ]
    )
    fake.script(held)
    proxy = await TcpProxy.start(agent.target)
    try:
        process = await start_firebox(
            "chat", "--json", "-m", "hi", agent=proxy.target, executor=executor.target
        )
        assert process.stdout is not None
        seen = b""
        while b"before" not in seen:
            seen += await asyncio.wait_for(process.stdout.readline(), 30)
        await proxy.cut()
        await asyncio.sleep(1.0)  # the CLI notices and reconnects while the run is still held
        fake.release()
        rest = await finish(process, limit=60)
    finally:
        await proxy.stop()
    assert rest.code == 0, rest.stderr
    notes = rest.stderr.strip().splitlines()
    assert len(notes) == 2 and notes[0].startswith("session ") and notes[1].startswith("connection lost")
    events = events_of(seen + rest.stdout)
    assert [int(e["index"]) for e in events] == list(range(1, len(events) + 1))
    assert "".join(e["textDelta"]["text"] for e in events if "textDelta" in e) == "before after"
    assert "runCompleted" in events[-1]


async def test_chat_in_a_session_with_a_run_in_progress_follows_it_first(agent, executor, fake) -> None:
    held = Reply(
        steps=[
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "one"}),
            Hold(),
            chunk({}, finish_reason="stop"),
        ]
    )
    fake.script(held, text_reply("two"))
    first = await start_firebox("chat", "-m", "first", **targets(agent, executor))
    assert first.stdout is not None and first.stderr is not None
    session_line = await asyncio.wait_for(first.stderr.readline(), 30)
    session_id = session_line.decode().split("session ", 1)[1].split()[0]
    seen = b""
    while b"one" not in seen:
        seen += await asyncio.wait_for(first.stdout.read(64), 30)

    second = await start_firebox("chat", session_id, "-m", "second", **targets(agent, executor))
    assert second.stderr is not None
    # Release the held run only once the second client says it follows it (no fixed sleep: a
    # loaded machine may take seconds to start a Python process).
    noted = b""
    while b"following run" not in noted:
        line = await asyncio.wait_for(second.stderr.readline(), 30)
        assert line, f"the second chat ended without following the run: {noted!r}"
        noted += line
    fake.release()
    first_result = await finish(first, limit=30)
    second_result = await finish(second, limit=60)
    assert first_result.code == 0, first_result.stderr
    assert second_result.code == 0, noted.decode() + second_result.stderr
    assert second_result.text == "one\ntwo\n"


async def test_chat_with_no_provider_configured_exits_6_naming_the_setting(tmp_path: Path, executor) -> None:
    async with running_agent(tmp_path / "bare-agent", executor=executor.target) as bare:
        result = await firebox("chat", "-m", "hi", agent=bare.target, executor=executor.target)
    assert result.code == 6, result.stderr
    failure = [line for line in result.stderr.splitlines() if line.startswith("firebox:")]
    assert len(failure) == 1 and "provider" in failure[0].lower()
