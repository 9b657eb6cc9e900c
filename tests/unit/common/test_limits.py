"""The field size limits both services check at the edge (firebox.common.limits)."""

from __future__ import annotations

import pytest

from firebox.agent.v1 import agent_pb2
from firebox.common.errors import InvalidArgument
from firebox.common.limits import ID_BYTES, MAX_STATUS_CHARS, TEXT_BYTES, check_sizes, quote, short_message
from firebox.executor.v1 import executor_pb2 as pb


def test_ids_names_and_paths_take_their_default_limits() -> None:
    check_sizes(pb.GetWorkspaceRequest(workspace_id="w" * ID_BYTES))
    with pytest.raises(InvalidArgument, match=r"^workspace_id: 257 bytes, more than the 256 allowed$"):
        check_sizes(pb.GetWorkspaceRequest(workspace_id="w" * (ID_BYTES + 1)))
    with pytest.raises(InvalidArgument, match=r"^path: "):
        check_sizes(pb.StatFileRequest(path="p" * (TEXT_BYTES + 1)))


def test_limits_count_bytes_not_characters() -> None:
    with pytest.raises(InvalidArgument, match="name"):
        check_sizes(pb.CreateWorkspaceRequest(name="é" * (TEXT_BYTES // 2 + 1)))


def test_nested_repeated_and_map_fields_are_named_by_path() -> None:
    request = agent_pb2.GenerateRequest(
        messages=[agent_pb2.Message(content="hi"), agent_pb2.Message(content="x" * (4 * 1024 * 1024 + 1))]
    )
    with pytest.raises(InvalidArgument, match=r"^messages\[1\]\.content: "):
        check_sizes(request)
    with pytest.raises(InvalidArgument, match=r"^env\['HOME'\]: "):
        check_sizes(pb.ExecuteRequest(env={"HOME": "x" * 40_000}))
    with pytest.raises(InvalidArgument, match=r"^labels key: "):
        check_sizes(pb.CreateWorkspaceRequest(labels={"k" * 5000: "v"}))
    step = pb.StepRequest()
    step.action.args.fields["content"].string_value = "x" * (1024 * 1024 + 1)
    with pytest.raises(InvalidArgument, match=r"^action\.args\.fields\['content'\]\.string_value: "):
        check_sizes(step)


def test_repeated_fields_are_bounded_in_items() -> None:
    with pytest.raises(InvalidArgument, match=r"^argv: at most 4096 items, got 5000$"):
        check_sizes(pb.ExecuteRequest(argv=["a"] * 5000))


def test_a_devcontainer_json_of_a_real_project_passes_and_a_huge_one_does_not() -> None:
    devcontainer = '{"image": "x", "customizations": {"vscode": {"settings": {' + '"k": 1, ' * 8000 + "}}}}"
    check_sizes(pb.CreateWorkspaceRequest(devcontainer=pb.Devcontainer(json=devcontainer)))
    with pytest.raises(InvalidArgument, match=r"^devcontainer\.json: "):
        check_sizes(pb.CreateWorkspaceRequest(devcontainer=pb.Devcontainer(json="x" * (256 * 1024 + 1))))


def test_streamed_data_and_a_megabyte_script_pass() -> None:
    check_sizes(pb.ExecuteRequest(script="x" * 1024 * 1024, input_data=b"x" * 8 * 1024 * 1024))


def test_messages_quote_a_short_prefix_of_the_input() -> None:
    assert quote("abc") == "'abc'"
    quoted = quote("x" * 10_000)
    assert quoted.startswith("'xxxx") and quoted.endswith("(10000 characters)") and len(quoted) < 100
    assert len(short_message("m" * 100_000)) <= MAX_STATUS_CHARS
