"""The background output buffer (offsets, overflow) and the records a restarted executor reads."""

from __future__ import annotations

import json

from executor_service.background import RESTARTED, BackgroundExecutions, OutputBuffer
from executor_service.execution import EndReason


def test_buffer_replays_after_any_offset_across_chunks_and_streams():
    buffer = OutputBuffer(100)
    buffer.append(1, b"hello ")
    buffer.append(2, b"err ")
    buffer.append(1, b"world")
    skipped, pieces, end = buffer.after(3)
    assert skipped == 0 and pieces == [(1, b"lo "), (2, b"err "), (1, b"world")] and end == 15
    assert buffer.after(15) == (0, [], 15)


def test_buffer_keeps_the_newest_bytes_and_counts_the_dropped_ones():
    buffer = OutputBuffer(10)
    for _ in range(5):
        buffer.append(1, b"abcdef")
    assert buffer.end == 30 and buffer.start == 20
    skipped, pieces, end = buffer.after(4)
    assert skipped == 16 and b"".join(p for _, p in pieces) == b"cdefabcdef" and end == 30


def test_buffer_hands_out_at_most_the_limit_per_step():
    buffer = OutputBuffer(1000)
    buffer.append(1, b"x" * 600)
    _, pieces, end = buffer.after(0, limit=256)
    assert sum(len(p) for _, p in pieces) == 256 and end == 256


async def test_records_left_running_by_a_crashed_executor_are_reported_ended(tmp_path):
    record = {
        "id": "ex_0123456789abcdef",
        "workspace_id": "ws_1",
        "session_id": "",
        "command": "serve",
        "tty": False,
        "started": "2026-12-03T08:00:00+00:00",
        "pid": 7,
        "output_bytes": 42,
        "finished": None,
        "exit_code": None,
        "reason": None,
        "message": "",
    }
    (tmp_path / "ex_0123456789abcdef.json").write_text(json.dumps(record))
    registry = BackgroundExecutions(tmp_path)
    await registry.load()
    bg = registry.get("ex_0123456789abcdef")
    assert bg.finished is not None and bg.finished.reason is EndReason.SHUTDOWN
    assert bg.finished.message == RESTARTED and bg.buffer.start == bg.buffer.end == 42
    # Written back, so the next start reads it as finished too.
    again = BackgroundExecutions(tmp_path)
    await again.load()
    assert again.get("ex_0123456789abcdef").finished.message == RESTARTED
