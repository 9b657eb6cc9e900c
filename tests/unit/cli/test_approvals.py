"""How an approval request is answered: the person's choice at the prompt, a standing answer
from --approve-all / --deny-all, or a denial when there is no terminal to ask on."""

from __future__ import annotations

import json

import pytest

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli.approvals import NO_TERMINAL_REASON, Answer, Approver
from firebox.cli.events import describe_request


def shell_request(command: str = "rm -rf build") -> ag.ApprovalRequested:
    call = ag.ToolCall(id="c1", name="shell", arguments=json.dumps({"command": command}))
    return ag.ApprovalRequested(tool_call=call, command=command, reason="writes", timeout_seconds=60)


def tool_request() -> ag.ApprovalRequested:
    arguments = json.dumps({"name": "x"})
    call = ag.ToolCall(id="c2", name="make_marker", arguments=arguments)
    return ag.ApprovalRequested(tool_call=call, command=arguments)


def scripted(*answers: str) -> tuple[Approver, list[tuple[str, str]]]:
    """An interactive approver whose prompts get `answers` in order; the (prompt, prefill) asked."""
    asked: list[tuple[str, str]] = []
    replies = iter(answers)

    def ask(prompt: str, prefill: str) -> str:
        asked.append((prompt, prefill))
        return next(replies)

    return Approver(None, interactive=True, ask=ask), asked  # type: ignore[arg-type]


def test_yes_approves() -> None:
    approver, _ = scripted("y")
    assert approver.answer(shell_request()) == Answer(ag.APPROVAL_DECISION_APPROVE)


def test_no_denies_with_the_reason_typed() -> None:
    approver, asked = scripted("n", "  too risky ")
    assert approver.answer(shell_request()) == Answer(ag.APPROVAL_DECISION_DENY, reason="too risky")
    assert asked[1][0].startswith("reason")


def test_edit_offers_the_suggested_command_to_change() -> None:
    approver, asked = scripted("e", "rm -rf build/tmp")
    answer = approver.answer(shell_request("rm -rf build"))
    assert answer == Answer(ag.APPROVAL_DECISION_APPROVE_EDITED, edited_command="rm -rf build/tmp")
    assert asked[1] == ("command > ", "rm -rf build")


def test_an_unknown_answer_asks_again() -> None:
    approver, asked = scripted("maybe", "yes")
    assert approver.answer(shell_request()).decision == ag.APPROVAL_DECISION_APPROVE
    assert len(asked) == 2


def test_edited_arguments_of_a_named_tool_must_be_a_json_object() -> None:
    approver, asked = scripted("e", "[1, 2]", "e", '{"name": "y"}')
    answer = approver.answer(tool_request())
    assert answer == Answer(ag.APPROVAL_DECISION_APPROVE_EDITED, edited_command='{"name": "y"}')
    assert asked[1] == ("arguments (JSON) > ", '{"name": "x"}')
    assert len(asked) == 4  # the bad JSON was refused and the question asked again


def test_end_of_input_at_the_prompt_denies() -> None:
    def ask(_prompt: str, _prefill: str) -> str:
        raise EOFError

    approver = Approver(None, interactive=True, ask=ask)  # type: ignore[arg-type]
    assert approver.answer(shell_request()).decision == ag.APPROVAL_DECISION_DENY


def test_ctrl_c_at_the_prompt_means_cancel_the_run() -> None:
    def ask(_prompt: str, _prefill: str) -> str:
        raise KeyboardInterrupt

    approver = Approver(None, interactive=True, ask=ask)  # type: ignore[arg-type]
    assert approver.answer(shell_request()).cancel


@pytest.mark.parametrize(
    ("mode", "decision"), [("approve", ag.APPROVAL_DECISION_APPROVE), ("deny", ag.APPROVAL_DECISION_DENY)]
)
def test_standing_answers_never_ask(mode: str, decision: int) -> None:
    def ask(_prompt: str, _prefill: str) -> str:
        raise AssertionError("asked")

    approver = Approver(None, mode, interactive=True, ask=ask)  # type: ignore[arg-type]
    assert approver.answer(shell_request()).decision == decision


def test_without_a_terminal_the_call_is_denied_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    def ask(_prompt: str, _prefill: str) -> str:
        raise AssertionError("asked")

    approver = Approver(None, interactive=False, ask=ask)  # type: ignore[arg-type]
    answer = approver.answer(shell_request())
    assert answer == Answer(ag.APPROVAL_DECISION_DENY, reason=NO_TERMINAL_REASON)
    assert approver.denied_without_terminal == 1


def test_requests_are_described_with_the_tool_for_named_tools() -> None:
    assert describe_request(shell_request("ls -la")) == "shell: ls -la"
    assert describe_request(tool_request()) == 'make_marker: {"name": "x"}'


def test_a_write_outside_the_writable_paths_can_be_allowed_for_good() -> None:
    request = shell_request("echo x > docs/a.md")
    request.paths.append("/workspace/docs/a.md")
    approver, asked = scripted("p")
    answer = approver.answer(request)
    assert answer == Answer(ag.APPROVAL_DECISION_APPROVE, always_allow_paths=True)
    assert "[p]aths" in asked[0][0]
    # Without paths in the request, "p" is no answer and the prompt does not offer it.
    approver, asked = scripted("p", "y")
    assert approver.answer(shell_request()) == Answer(ag.APPROVAL_DECISION_APPROVE)
    assert "[p]aths" not in asked[0][0] and len(asked) == 2
