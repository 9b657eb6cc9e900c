"""Provider selection from the configuration, and the Anthropic module's message shaping."""

from __future__ import annotations

import pytest

from agent_service.config import load
from agent_service.providers import build_provider
from agent_service.providers.anthropic_messages import AnthropicMessagesProvider, messages_shape
from agent_service.providers.base import ProviderSettings, refuses_field
from agent_service.providers.openai_chat import OpenAIChatProvider


def test_provider_defaults_to_openai_with_its_key():
    config = load([], {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"})
    assert (config.provider, config.provider_api_key) == ("openai", "sk-o")


def test_anthropic_provider_reads_anthropic_key_from_flag_or_variable():
    assert load(["--provider", "anthropic"], {"ANTHROPIC_API_KEY": "sk-a"}).provider_api_key == "sk-a"
    config = load(
        [], {"FIREBOX_PROVIDER": "Anthropic", "ANTHROPIC_API_KEY": "sk-a", "OPENAI_API_KEY": "sk-o"}
    )
    assert (config.provider, config.provider_api_key) == ("anthropic", "sk-a")


def test_firebox_key_wins_over_the_providers_own_variable():
    env = {"FIREBOX_PROVIDER_API_KEY": "sk-f", "ANTHROPIC_API_KEY": "sk-a"}
    assert load(["--provider", "anthropic"], env).provider_api_key == "sk-f"


def test_unknown_provider_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        load(["--provider", "gemini"], {})
    assert "expected openai or anthropic" in capsys.readouterr().err


def test_output_limit_and_run_timeout_flags():
    config = load(["--max-output-tokens", "2048", "--run-timeout", "30m", "--thinking-budget", "1024"], {})
    assert (config.max_output_tokens, config.run_timeout, config.thinking_budget) == (2048, 1800.0, 1024)
    with pytest.raises(SystemExit):
        load(["--max-output-tokens", "0"], {})


def test_build_provider_picks_the_wire_module():
    assert isinstance(build_provider(ProviderSettings(wire_format="openai")), OpenAIChatProvider)
    anthropic = build_provider(ProviderSettings(wire_format="anthropic", api_key="k"))
    assert isinstance(anthropic, AnthropicMessagesProvider)
    assert anthropic.target == "https://api.anthropic.com"


def test_messages_shape_hoists_system_merges_turns_and_skips_empty_text():
    system, messages = messages_shape(
        [
            {"role": "system", "content": "rules"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "b"},
            {"role": "system", "content": "skill text"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "shell", "arguments": '{"c'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": ""},
        ]
    )
    assert system == "rules\n\nskill text"
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        # A call cut mid-arguments goes back with an empty input; its result says it never ran.
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shell", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "(no output)"}]},
    ]


def test_refusal_words_name_the_field_not_a_longer_one():
    openai_reasoning = (
        "unsupported parameter: 'max_tokens' is not supported with this model. use 'max_completion_tokens'"
    )
    assert refuses_field(openai_reasoning, "max_tokens")
    assert not refuses_field("unrecognized request argument supplied: max_completion_tokens", "max_tokens")
    assert not refuses_field("max_tokens is too large: 100000", "max_tokens")
