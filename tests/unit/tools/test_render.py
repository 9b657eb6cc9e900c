"""How a tool's command template turns arguments into argv, and how bad definitions are refused."""

from __future__ import annotations

import pytest

from executor_service.tools import ToolRegistry, parse_tool
from firebox.common import errors

SCHEMA = {
    "type": "object",
    "properties": {
        "words": {"type": "array", "items": {"type": "string"}},
        "n": {"type": "integer"},
        "flag": {"type": "boolean"},
        "opts": {"type": "object"},
        "mode": {"type": "string", "default": "fast"},
    },
}


def registry(command: list[str]) -> ToolRegistry:
    return ToolRegistry(
        [parse_tool({"name": "t", "description": "d", "command": command, "args_schema": SCHEMA}, 0)]
    )


def test_each_argument_is_one_element_and_arrays_expand():
    _, argv = registry(["prog", "--", "{words}"]).render("t", {"words": ["a b", "; rm -rf /", "$(x)"]})
    assert argv == ["prog", "--", "a b", "; rm -rf /", "$(x)"]


def test_values_render_as_text_and_missing_ones_drop_their_element():
    reg = registry(["prog", "-n{n}", "--flag={flag}", "{opts}", "{{literal}}", "--mode={mode}"])
    _, argv = reg.render("t", {"n": 3.0, "flag": True, "opts": {"b": 1, "a": "x"}})
    assert argv == ["prog", "-n3", "--flag=true", '{"a":"x","b":1}', "{literal}", "--mode=fast"]
    _, argv = reg.render("t", {})
    assert argv == ["prog", "{literal}", "--mode=fast"]


def test_schema_failures_name_the_argument_path():
    with pytest.raises(errors.InvalidArgument) as caught:
        registry(["prog", "{words}"]).render("t", {"words": ["ok", 7]})
    assert caught.value.field == "action.args.words[1]"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "1bad", "description": "d", "command": ["x"]}, "name"),
        ({"name": "t", "description": "", "command": ["x"]}, "description is required"),
        ({"name": "t", "description": "d", "command": []}, "non-empty list"),
        (
            {
                "name": "t",
                "description": "d",
                "command": ["{p}"],
                "args_schema": SCHEMA | {"properties": {"p": {}}},
            },
            "the program",
        ),
        ({"name": "t", "description": "d", "command": ["x", "{zz}"]}, "zz not in args_schema"),
        (
            {"name": "t", "description": "d", "command": ["x", "{n!r}"], "args_schema": SCHEMA},
            "plain argument",
        ),
        ({"name": "t", "description": "d", "command": ["x"], "args_schema": {"type": "array"}}, "type"),
        ({"name": "t", "description": "d", "command": ["x"], "shell": True}, "unknown key"),
        ({"name": "t", "description": "d", "command": ["x"], "timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_tool_definitions_say_what_is_wrong(entry, problem):
    with pytest.raises(ValueError, match=problem):
        parse_tool(entry, 0)
