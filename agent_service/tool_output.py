"""Shaping a tool's output for the model: how the call ended, after a bounded head and tail."""

from __future__ import annotations

from firebox.common.headtail import HeadTail
from firebox.executor.v1 import executor_pb2

# Tool output a run keeps in its event list (held in memory for the event retention). Past it,
# output still reaches the model's head-and-tail view but no longer the clients, and the tool
# call's finish says output_truncated.
RUN_EVENT_OUTPUT_CAP_BYTES = 64 * 1024 * 1024


def tool_result_text(output: HeadTail, exit_code: int, end_reason: int, note: str) -> str:
    """What the model is told of a tool run: the bounded output and how it ended."""
    reason = executor_pb2.EndReason.Name(end_reason).removeprefix("END_REASON_").lower()
    tail = (
        f"[exit code {exit_code}]" if end_reason == executor_pb2.END_REASON_EXITED else f"[{reason}: {note}]"
    )
    body = output.text()
    return f"{body}\n{tail}" if body else tail
