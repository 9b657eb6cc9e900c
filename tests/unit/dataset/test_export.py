"""The dataset exporter on handmade logs: joins, labels, failures, bad lines, determinism, summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from firebox.common.trainlog import record_to_line
from firebox.dataset import export
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

FK = trace_pb2.FeedbackKind
BASE = 1_790_000_000
SHELL = trace_pb2.ChatTool(name="shell", description="Run a command", parameters='{"type":"object"}')


def _gen(
    gid: str,
    t: int,
    calls: Sequence[tuple[str, str, str]] = (),
    session: str = "s1",
    context: str = "",
    completion: str = "",
) -> trace_pb2.GenerationRecord:
    g = trace_pb2.GenerationRecord(
        generation_id=gid,
        session_id=session,
        context_id=context,
        run_id=f"run-{gid}",
        model="m",
        completion=completion,
    )
    g.messages.add(role="system", content="You run shell commands.")
    g.messages.add(role="user", content=f"task for {gid}")
    for call_id, name, args in calls:
        g.tool_calls.add(id=call_id, name=name, arguments=args)
    g.tools.append(SHELL)
    g.start_time.FromSeconds(BASE + t)
    g.latency.FromMilliseconds(500)
    return g


def _exe(
    eid: str,
    t: int,
    script: str,
    exit_code: int = 0,
    tool_call: str = "",
    known: str = "",
    session: str = "",
    end: int = executor_pb2.END_REASON_EXITED,
) -> trace_pb2.ExecutionRecord:
    e = trace_pb2.ExecutionRecord(execution_id=eid, workspace_id="ws", exit_code=exit_code, end_reason=end)
    e.request.script = script
    e.request.tool_call_id = tool_call
    e.request.known_id = known
    e.request.agent_session_id = session
    e.start_time.FromSeconds(BASE + t)
    return e


def _fb(fid: str, t: int, kind: int, **event: Any) -> trace_pb2.FeedbackRecord:
    f = trace_pb2.FeedbackRecord(
        feedback_id=fid, source="client", event=trace_pb2.FeedbackEvent(kind=kind, **event)
    )
    f.server_time.FromSeconds(BASE + t)
    return f


def _write(path: Path, records: list[Message], tail: str = "") -> None:
    path.write_text("".join(record_to_line(r) + "\n" for r in records) + tail)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    generations = [
        _gen("gen-1", 100, [("call-a", "shell", '{"command": "ls"}')]),
        _gen(
            "gen-2",
            110,
            [("call-b", "shell", '{"command": "rm -rf build", "timeout": 5}')],
            completion="Cleaning.",
        ),
        _gen("gen-3", 120, [("call-c", "shell", '{"command": "shutdown now"}')]),
        _gen("gen-4", 130, [("call-d", "shell", '{"command": "make test"}')]),
        _gen("gen-5", 140, [("call-e", "shell", '{"command": "echo hi"}')]),
        _gen("gen-6", 150, [("call-f", "read_file", '{"path": "a.txt"}')]),
        _gen("gen-7", 200, session="", context="nb-1", completion="```sh\ndf -h\n```"),
    ]
    executions = [
        _exe("ex-a", 102, "ls", tool_call="call-a", session="s1"),
        _exe("ex-b", 112, "rm -rf build/tmp", tool_call="call-b", session="s1"),
        _exe("ex-9", 203, "df -h /", known="cell-9"),
        _exe("ex-x", 204, "whoami", known="cell-unknown"),
        _exe("ex-8", 207, "uptime", known="cell-8", session="another-session"),
    ]
    feedback = [
        _fb(
            "fb-1",
            111,
            FK.FEEDBACK_KIND_APPROVAL_EDITED,
            tool_call_id="call-b",
            edited_text="rm -rf build/tmp",
        ),
        _fb("fb-2", 121, FK.FEEDBACK_KIND_APPROVAL_DENIED, tool_call_id="call-c", reason="no"),
        _fb(
            "fb-3",
            201,
            FK.FEEDBACK_KIND_SUGGESTION_SHOWN,
            known_id="cell-9",
            context_id="nb-1",
            generation_id="gen-7",
            suggested_text="df -h",
        ),
        _fb(
            "fb-4",
            202,
            FK.FEEDBACK_KIND_SUGGESTION_EDITED,
            known_id="cell-9",
            context_id="nb-1",
            edited_text="df -h /",
        ),
        _fb(
            "fb-5",
            205,
            FK.FEEDBACK_KIND_SUGGESTION_SHOWN,
            known_id="cell-8",
            context_id="nb-1",
            suggested_text="uptime",
        ),
        _fb("fb-6", 206, FK.FEEDBACK_KIND_SUGGESTION_ACCEPTED, known_id="cell-8", context_id="nb-1"),
        _fb("fb-7", 300, FK.FEEDBACK_KIND_SESSION_ENDED, session_id="s1"),
    ]
    _write(d / "generations-20261121.jsonl", generations)
    # ex-d sits in a rotated file; a corrupt line sits between two good ones.
    _write(d / "executions-20261121.jsonl", executions[:2], tail="this is not json\n")
    with (d / "executions-20261121.jsonl").open("a") as f:
        f.write("".join(record_to_line(r) + "\n" for r in executions[2:]))
    _write(
        d / "executions-20261121.1.jsonl",
        [_exe("ex-d", 132, "make test", exit_code=2, tool_call="call-d", session="s1")],
    )
    # The feedback file ends in a line a crash cut short.
    _write(d / "feedback-20261121.jsonl", feedback, tail=record_to_line(feedback[0])[:40])
    return d


def _examples(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _key(example: dict[str, Any]) -> str:
    return example["ids"]["tool_call_id"] or example["ids"]["known_id"]


def test_each_suggestion_is_labelled_from_what_happened_next(logs: Path, tmp_path: Path) -> None:
    export(logs, tmp_path / "out.jsonl")
    by_key = {_key(e): e for e in _examples(tmp_path / "out.jsonl")}
    assert {k: (e["label"], e["exit_code"]) for k, e in by_key.items()} == {
        "call-a": ("accepted", 0),  # executed as suggested
        "call-b": ("edited", 0),  # approval edited, and the execution differs from the suggestion
        "call-c": ("rejected", None),  # approval denied, never executed
        "call-e": ("not_executed", None),  # no feedback, no execution
        "cell-9": ("edited", 0),  # client suggestion joined to its execution by known_id
        "cell-8": ("accepted", None),  # accepted; the execution with that cell id was in another session
    }


def test_example_is_the_conversation_then_the_command_actually_executed(logs: Path, tmp_path: Path) -> None:
    export(logs, tmp_path / "out.jsonl")
    by_key = {_key(e): e for e in _examples(tmp_path / "out.jsonl")}
    edited = by_key["call-b"]
    assert edited["messages"][:2] == [
        {"role": "system", "content": "You run shell commands."},
        {"role": "user", "content": "task for gen-2"},
    ]
    final = edited["messages"][-1]
    assert final["role"] == "assistant" and final["content"] == "Cleaning."
    (call,) = final["tool_calls"]
    assert call["id"] == "call-b" and call["type"] == "function" and call["function"]["name"] == "shell"
    assert json.loads(call["function"]["arguments"]) == {"command": "rm -rf build/tmp", "timeout": 5}
    assert edited["suggested"] == "rm -rf build"
    assert edited["tools"] == [
        {
            "type": "function",
            "function": {"name": "shell", "description": "Run a command", "parameters": {"type": "object"}},
        }
    ]
    assert edited["ids"] == {
        "session_id": "s1",
        "context_id": "",
        "run_id": "run-gen-2",
        "generation_id": "gen-2",
        "tool_call_id": "call-b",
        "known_id": "",
        "execution_id": "ex-b",
        "feedback_ids": ["fb-1"],
    }
    # Accepted unchanged: the model's own arguments are kept byte for byte.
    assert by_key["call-a"]["messages"][-1]["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"}'
    # A client-shown suggestion: the conversation of its generation, then the text as executed.
    cell = by_key["cell-9"]
    assert cell["messages"][-1] == {"role": "assistant", "content": "df -h /"}
    assert cell["ids"]["generation_id"] == "gen-7" and cell["ids"]["execution_id"] == "ex-9"
    assert cell["ids"]["feedback_ids"] == ["fb-3", "fb-4"]
    # Without a generation id the shown suggestion takes the context's latest generation before it.
    assert by_key["cell-8"]["ids"]["generation_id"] == "gen-7"
    assert by_key["cell-8"]["messages"][-1] == {"role": "assistant", "content": "uptime"}


def test_failed_executions_are_left_out_unless_asked_for(logs: Path, tmp_path: Path) -> None:
    default = export(logs, tmp_path / "default.jsonl")
    assert "call-d" not in {_key(e) for e in _examples(tmp_path / "default.jsonl")}
    assert default.skipped["failed_execution"] == 1
    kept = export(logs, tmp_path / "kept.jsonl", include_failed=True)
    failed = {_key(e): e for e in _examples(tmp_path / "kept.jsonl")}["call-d"]
    assert (failed["label"], failed["exit_code"], failed["end_reason"]) == (
        "accepted",
        2,
        "END_REASON_EXITED",
    )
    assert kept.skipped["failed_execution"] == 0
    assert kept.examples_written == default.examples_written + 1


def test_an_execution_that_timed_out_counts_as_failed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "generations-1.jsonl", [_gen("g", 1, [("c", "shell", '{"command": "sleep 99"}')])])
    _write(
        logs / "executions-1.jsonl",
        [_exe("e", 2, "sleep 99", tool_call="c", end=executor_pb2.END_REASON_TIMED_OUT)],
    )
    assert export(logs, tmp_path / "out.jsonl").skipped["failed_execution"] == 1
    export(logs, tmp_path / "out.jsonl", include_failed=True)
    (example,) = _examples(tmp_path / "out.jsonl")
    assert example["end_reason"] == "END_REASON_TIMED_OUT"


def test_corrupt_and_truncated_lines_are_skipped_and_counted(logs: Path, tmp_path: Path) -> None:
    summary = export(logs, tmp_path / "out.jsonl")
    assert summary.skipped["corrupt_line"] == 1
    assert summary.skipped["truncated_line"] == 1
    assert summary.records_read == {"generations": 7, "executions": 6, "feedback": 7}


def test_two_runs_give_identical_bytes_sorted_by_time(logs: Path, tmp_path: Path) -> None:
    export(logs, tmp_path / "one.jsonl")
    # Reordering the input lines must not change the output.
    gen_file = logs / "generations-20261121.jsonl"
    gen_file.write_text("".join(reversed(gen_file.read_text().splitlines(keepends=True))))
    export(logs, tmp_path / "two.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    order = [_key(e) for e in _examples(tmp_path / "one.jsonl")]
    assert order == ["call-a", "call-b", "call-c", "call-e", "cell-9", "cell-8"]


def test_summary_counts_and_prints(logs: Path, tmp_path: Path) -> None:
    summary = export(logs, tmp_path / "out.jsonl")
    assert summary.files_read == 4
    assert summary.examples_written == 6
    assert summary.labels == {"accepted": 2, "edited": 2, "rejected": 1, "not_executed": 1}
    assert summary.skipped == {
        "corrupt_line": 1,
        "truncated_line": 1,
        "failed_execution": 1,
        "not_a_command": 1,
    }
    # ex-x names an unknown cell, ex-8 a cell in another session; fb-7 is a session event.
    assert summary.unmatched == {"executions": 2, "feedback": 1}
    text = str(summary)
    assert "read 4 files: generations 7, executions 6, feedback 7" in text
    assert "wrote 6 examples" in text and "accepted 2, edited 2, rejected 1, not_executed 1" in text
    assert "corrupt_line 1" in text and "failed_execution 1" in text
    assert json.loads(json.dumps(summary.as_dict()))["examples_written"] == 6


def test_duplicate_records_from_a_copied_file_count_once(logs: Path, tmp_path: Path) -> None:
    copy = logs / "old"
    copy.mkdir()
    (copy / "generations-20261121.jsonl").write_bytes((logs / "generations-20261121.jsonl").read_bytes())
    summary = export(logs, tmp_path / "out.jsonl")
    assert summary.skipped["duplicate_record"] == 7
    assert summary.examples_written == 6


def test_progress_is_reported_up_to_the_total(logs: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    export(logs, tmp_path / "out.jsonl", progress=lambda done, total: calls.append((done, total)))
    total = sum(p.stat().st_size for p in logs.glob("*.jsonl"))
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_a_missing_logs_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        export(tmp_path / "nowhere", tmp_path / "out.jsonl")


def test_cell_executions_join_the_latest_suggestion_made_before_them(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "generations-1.jsonl", [_gen("g", 1, session="", context="nb")])
    shown = FK.FEEDBACK_KIND_SUGGESTION_SHOWN
    _write(
        logs / "feedback-1.jsonl",
        [
            _fb("f1", 10, shown, known_id="cell-1", context_id="nb", generation_id="g", suggested_text="ls"),
            _fb(
                "f2", 20, shown, known_id="cell-1", context_id="nb", generation_id="g", suggested_text="ls -l"
            ),
        ],
    )
    _write(
        logs / "executions-1.jsonl",
        [
            _exe("e0", 5, "pwd", known="cell-1"),  # before any suggestion: typed by hand
            _exe("e1", 11, "ls", known="cell-1"),
            _exe("e2", 21, "ls -la", known="cell-1"),
        ],
    )
    summary = export(logs, tmp_path / "out.jsonl")
    examples = _examples(tmp_path / "out.jsonl")
    assert [(e["ids"]["feedback_ids"], e["ids"]["execution_id"], e["label"]) for e in examples] == [
        (["f1"], "e1", "accepted"),
        (["f2"], "e2", "edited"),
    ]
    assert summary.unmatched == {"executions": 1}


def test_nothing_after_a_clear_joins_a_generation_or_suggestion_from_before_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(
        logs / "generations-1.jsonl",
        [_gen("g-old", 1, [("call-x", "shell", '{"command": "make"}')], session="s1")],
    )
    shown, cleared = FK.FEEDBACK_KIND_SUGGESTION_SHOWN, FK.FEEDBACK_KIND_SESSION_CLEARED
    _write(
        logs / "feedback-1.jsonl",
        [
            _fb("f-before", 5, shown, known_id="cell-1", session_id="s1", suggested_text="ls"),
            _fb("clear", 10, cleared, session_id="s1", reason="cleared 2 messages and 1 runs"),
            # After the clear: a suggestion with no generation of the new conversation to join.
            _fb("f-after", 20, shown, known_id="cell-2", session_id="s1", suggested_text="pwd"),
        ],
    )
    _write(
        logs / "executions-1.jsonl",
        [
            _exe("e-before", 6, "ls", known="cell-1", session="s1"),
            _exe("e-after", 21, "ls", known="cell-1", session="s1"),  # same cell, after the clear
        ],
    )
    summary = export(logs, tmp_path / "out.jsonl")
    examples = _examples(tmp_path / "out.jsonl")
    assert sorted((e["ids"]["feedback_ids"], e["ids"]["execution_id"]) for e in examples) == [
        ([], ""),  # call-x: never executed
        (["f-before"], "e-before"),
    ]
    assert summary.skipped["no_conversation"] == 1
    assert summary.unmatched["executions"] == 1
