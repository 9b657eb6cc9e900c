"""Shaping a tool's output for the model: a bounded head and tail, and how the call ended."""

from __future__ import annotations

from firebox.executor.v1 import executor_pb2

# Tool output a run keeps in its event list (held in memory for the event retention). Past it,
# output still reaches the model's head-and-tail view but no longer the clients, and the tool
# call's finish says output_truncated.
RUN_EVENT_OUTPUT_CAP_BYTES = 64 * 1024 * 1024


class HeadTail:
    """Keeps the first and last `limit // 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    @property
    def omitted(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        head = self.head.decode(errors="replace")
        if not self.omitted:
            return head + self.tail.decode(errors="replace")
        return f"{head}\n[... {self.omitted} bytes omitted ...]\n{self.tail.decode(errors='replace')}"


def tool_result_text(output: HeadTail, exit_code: int, end_reason: int, note: str) -> str:
    """What the model is told of a tool run: the bounded output and how it ended."""
    reason = executor_pb2.EndReason.Name(end_reason).removeprefix("END_REASON_").lower()
    tail = (
        f"[exit code {exit_code}]" if end_reason == executor_pb2.END_REASON_EXITED else f"[{reason}: {note}]"
    )
    body = output.text()
    return f"{body}\n{tail}" if body else tail
