"""`firebox dataset export` calls the exporter and reports its summary; no server is involved."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from google.protobuf import json_format

from firebox.trace.v1 import trace_pb2

FIREBOX = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "firebox"


def firebox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FIREBOX), *args], capture_output=True, text=True, timeout=60)


def write_logs(logs: Path) -> None:
    logs.mkdir()
    generation = trace_pb2.GenerationRecord(
        generation_id="gen-1",
        session_id="ses-1",
        model="m",
        messages=[trace_pb2.ChatMessage(role="user", content="list files")],
        tool_calls=[
            trace_pb2.ChatToolCall(id="call-1", name="shell", arguments=json.dumps({"command": "ls"}))
        ],
    )
    line = json_format.MessageToJson(generation, indent=None)
    (logs / "generations-20260101.jsonl").write_text(f"{line}\n{{not json\n")


def test_export_writes_the_file_and_prints_the_summary_as_json(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs")
    out = tmp_path / "examples.jsonl"
    result = firebox("dataset", "export", "--logs", str(tmp_path / "logs"), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records_read"]["generations"] == 1
    assert summary["skipped"]["corrupt_line"] == 1
    assert summary["examples_written"] == len(out.read_text().splitlines()) == 1


def test_export_summary_for_people_names_the_output_file(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs")
    out = tmp_path / "examples.jsonl"
    result = firebox("dataset", "export", "--logs", str(tmp_path / "logs"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote 1 examples to {out}" in result.stdout


def test_export_from_a_missing_directory_exits_3_with_one_line(tmp_path: Path) -> None:
    result = firebox(
        "dataset", "export", "--logs", str(tmp_path / "nope"), "--out", str(tmp_path / "x.jsonl")
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no logs directory" in lines[0]
