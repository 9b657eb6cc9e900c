"""Pure parts of the agent's policies: the read-only command check, skill files, the model's view
of a compacted history, the sandbox mapping, and the new settings."""

from __future__ import annotations

import pytest

from agent_service.approvals import ApprovalBroker, Decision, Resolution, is_read_only_command
from agent_service.config import DEFAULT_READ_ONLY_COMMANDS, load
from agent_service.context import SUMMARY_PREFIX, estimate_tokens, model_view, recent_user_messages
from agent_service.skills import SkillLibrary, load_skills, parse_skill
from agent_service.toolloop import workspace_policy
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FailedPrecondition, InvalidArgument, NotFound
from firebox.executor.v1 import executor_pb2

PREFIXES = DEFAULT_READ_ONLY_COMMANDS


@pytest.mark.parametrize(
    "command",
    [
        "ls",
        "ls -la /workspace",
        "cat README.md",
        "git status",
        "git diff HEAD~1",
        "grep -rn 'TODO' src",
        "pwd",
    ],
)
def test_plain_read_only_commands_need_no_approval(command):
    assert is_read_only_command(command, PREFIXES)


@pytest.mark.parametrize(
    "command",
    [
        "rm x",
        "ls; rm -rf /",
        "ls && rm x",
        "ls || rm x",
        "cat x | sh",
        "ls & rm x",
        "echo $(rm x)",
        "echo `rm x`",
        "echo ${HOME}",
        "cat < /etc/passwd",
        "echo hi > file",
        "ls\nrm x",
        "find . -delete",
        "find . -exec rm {} +",
        "git diff --output=/workspace/x",
        "git push",
        "gitstatus",
        "lsblk",
        "PAGER=sh git log",
        "ls 'unterminated",
        "",
        "cat <(rm x)",
    ],
)
def test_anything_else_needs_approval(command):
    assert not is_read_only_command(command, PREFIXES)


def test_the_servers_default_policy_is_never_unless_configured():
    assert load([], {}).default_approval_policy == "never"
    assert load(["--default-approval-policy", "ON_REQUEST"], {}).default_approval_policy == "on-request"
    with pytest.raises(SystemExit):
        load(["--default-approval-policy", "sometimes"], {})


def test_the_allowlist_is_configurable():
    config = load(["--read-only-commands", "make test, ls"], {})
    assert config.read_only_commands == ("make test", "ls")
    assert is_read_only_command("make test -j2", config.read_only_commands)
    assert not is_read_only_command("cat x", config.read_only_commands)


@pytest.mark.parametrize(
    "argv",
    [
        ["--compact-threshold", "0.95"],
        ["--compact-threshold", "x"],
        ["--context-window", "0"],
        ["--read-only-commands", ","],
    ],
)
def test_bad_policy_flags_are_refused(argv):
    with pytest.raises(SystemExit):
        load(argv, {})


async def test_broker_resolves_times_out_and_refuses_unknown_calls():
    broker = ApprovalBroker()
    import asyncio

    waiting = asyncio.ensure_future(broker.wait("run-1", "call-1", 30))
    await asyncio.sleep(0)
    assert broker.pending("run-1") == ["call-1"]
    with pytest.raises(InvalidArgument):
        broker.resolve("run-1", "call-1", Resolution(Decision.APPROVE_EDITED, edited_command=" "), True)
    with pytest.raises(FailedPrecondition):
        broker.resolve("run-1", "call-2", Resolution(Decision.APPROVE), True)
    with pytest.raises(NotFound):
        broker.resolve("run-2", "call-1", Resolution(Decision.APPROVE), False)
    broker.resolve("run-1", "call-1", Resolution(Decision.DENY, "no"), True)
    assert (await waiting) == Resolution(Decision.DENY, "no")
    timed_out = await broker.wait("run-1", "call-3", 0.01)
    assert timed_out.decision is Decision.DENY and timed_out.timed_out
    assert broker.pending("run-1") == []


def test_skill_files_need_front_matter_with_name_and_description(tmp_path):
    skill = parse_skill("---\nname: tidy\ndescription: 'Tidy up'\n---\nDo it.\n", tmp_path)
    assert (skill.name, skill.description, skill.instructions) == ("tidy", "Tidy up", "Do it.")
    for bad in (
        "no front matter",
        "---\nname: x\n",
        "---\ndescription: d\n---\n",
        "---\nname: a b\ndescription: d\n---\n",
    ):
        with pytest.raises(ValueError):
            parse_skill(bad, tmp_path)
    library = SkillLibrary({"tidy": skill})
    assert [s.name for s in library.mentioned("use $tidy and $tidy, not $nope")] == ["tidy"]
    assert load_skills(tmp_path / "missing").problems


def _message(id_: str, role: int, content: str, **extra) -> agent_pb2.Message:
    return agent_pb2.Message(id=id_, role=role, content=content, **extra)


def test_model_view_after_a_marker_is_kept_users_then_summary_then_the_rest():
    u1 = _message("u1", agent_pb2.ROLE_USER, "first")
    a1 = _message("a1", agent_pb2.ROLE_ASSISTANT, "reply")
    u2 = _message("u2", agent_pb2.ROLE_USER, "second")
    marker = _message("m", agent_pb2.ROLE_SYSTEM, "SUMMARY")
    marker.compaction.kept_user_message_ids.append("u2")
    after = _message("a2", agent_pb2.ROLE_ASSISTANT, "later")
    view = model_view([u1, a1, u2, marker, after])
    assert [(m.id, m.content) for m in view] == [
        ("u2", "second"),
        ("m", SUMMARY_PREFIX + "SUMMARY"),
        ("a2", "later"),
    ]
    assert model_view([u1, a1]) == [u1, a1]
    # The newest user messages that fit the budget, in order; summaries are never "user messages".
    assert [m.id for m in recent_user_messages([u1, a1, u2], budget_tokens=8)] == ["u2"]
    assert [m.id for m in recent_user_messages(view, budget_tokens=1000)] == ["u2"]
    assert estimate_tokens([{"role": "user", "content": "x" * 400}]) >= 100


def test_sandbox_modes_map_onto_the_workspace_policy():
    def policy(mode: int, **base) -> executor_pb2.IsolationPolicy | None:
        settings = agent_pb2.SessionSettings(sandbox_mode=mode)
        if base:
            settings.workspace_policy.CopyFrom(executor_pb2.IsolationPolicy(**base))
        return workspace_policy(settings)

    read_only = policy(agent_pb2.SANDBOX_MODE_READ_ONLY)
    assert read_only.read_only and not read_only.network
    write = policy(agent_pb2.SANDBOX_MODE_WORKSPACE_WRITE, memory_bytes=1 << 20)
    assert not write.read_only and not write.network and write.memory_bytes == 1 << 20
    full = policy(agent_pb2.SANDBOX_MODE_FULL)
    assert full.network and not full.read_only
    assert policy(agent_pb2.SANDBOX_MODE_UNSPECIFIED) is None
    assert policy(agent_pb2.SANDBOX_MODE_UNSPECIFIED, network=True).network
