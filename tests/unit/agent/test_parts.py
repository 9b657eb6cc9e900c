"""Small parts of the agent: configuration, bounded tool output, Retry-After, message shapes."""

from __future__ import annotations

import pytest

from agent_service.config import load
from agent_service.generation import provider_messages
from agent_service.providers.base import retry_after as _retry_after
from agent_service.toolloop import HeadTail, tool_result_text
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import InvalidArgument
from firebox.common.secrets import redactor
from firebox.executor.v1 import executor_pb2


def test_flags_win_over_variables_which_win_over_defaults(tmp_path):
    env = {
        "FIREBOX_LISTEN": "0.0.0.0:7000",
        "FIREBOX_EXECUTOR": "exec:1",
        "FIREBOX_MODEL": "env-model",
        "FIREBOX_EVENT_RETENTION": "20m",
        "FIREBOX_CONFIG_DIR": str(tmp_path),
    }
    config = load(["--listen", "127.0.0.1:7001", "--tool-output-limit", "2048"], env)
    assert config.listen == "127.0.0.1:7001"
    assert config.executor == "exec:1"
    assert config.model == "env-model"
    assert config.event_retention == 1200
    assert config.tool_output_limit == 2048
    assert config.database_path == tmp_path / "agent.db"
    assert config.log_dir == tmp_path / "logs"
    assert load([], {}).listen == "127.0.0.1:50052"


def test_api_key_comes_from_the_environment_only_and_is_redacted():
    config = load([], {"OPENAI_API_KEY": "sk-test-abcdef123456"})
    assert config.provider_api_key == "sk-test-abcdef123456"
    assert config.provider_configured
    assert "sk-test" not in repr(config)
    assert redactor.text("key=sk-test-abcdef123456") == "key=[REDACTED]"
    with pytest.raises(SystemExit):
        load(["--api-key", "x"], {})


@pytest.mark.parametrize("argv", [["--listen", "nope"], ["--max-steps", "0"], ["--training-log", "maybe"]])
def test_bad_flags_are_refused_with_usage(argv):
    with pytest.raises(SystemExit):
        load(argv, {})


def test_head_and_tail_are_kept_within_the_limit():
    out = HeadTail(100)
    for n in range(1000):
        out.add(f"{n:04d}\n".encode())
    text = out.text()
    assert text.startswith("0000\n")
    assert text.rstrip().endswith("0999")
    assert "[... 4900 bytes omitted ...]" in text
    assert len(out.head) + len(out.tail) == 100


def test_tool_result_says_how_the_command_ended():
    out = HeadTail(100)
    out.add(b"hi\n")
    assert tool_result_text(out, 2, executor_pb2.END_REASON_EXITED, "") == "hi\n\n[exit code 2]"
    timed_out = tool_result_text(HeadTail(10), -1, executor_pb2.END_REASON_TIMED_OUT, "killed after 5s")
    assert timed_out == "[timed_out: killed after 5s]"


def test_retry_after_in_seconds_milliseconds_or_a_date():
    import httpx2

    assert _retry_after(httpx2.Headers({"retry-after": "2"})) == 2.0
    assert _retry_after(httpx2.Headers({"retry-after-ms": "250"})) == 0.25
    assert _retry_after(httpx2.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert _retry_after(httpx2.Headers({"retry-after": "soon"})) is None
    assert _retry_after(httpx2.Headers({})) is None


def test_tool_messages_must_name_their_call():
    with pytest.raises(InvalidArgument, match=r"messages\[0\].tool_call_id"):
        provider_messages("", [agent_pb2.Message(role=agent_pb2.ROLE_TOOL, content="x")])
    shaped = provider_messages(
        "",
        [
            agent_pb2.Message(
                role=agent_pb2.ROLE_ASSISTANT,
                tool_calls=[agent_pb2.ToolCall(id="c", name="shell", arguments="{}")],
            ),
            agent_pb2.Message(role=agent_pb2.ROLE_TOOL, content="out", tool_call_id="c"),
        ],
    )
    assert shaped[0]["content"] is None and shaped[0]["tool_calls"][0]["id"] == "c"
    assert shaped[1] == {"role": "tool", "content": "out", "tool_call_id": "c"}
