"""The expiry state file (executor_service/expiry.py) is written whole even when saves overlap:
close's save may start while the cancelled loop's is still being written (it once failed an
executor's shutdown with FileNotFoundError on the shared temporary file)."""

from __future__ import annotations

import asyncio
import json

from executor_service.expiry import STATE_FILE, WorkspaceExpiry


async def test_overlapping_saves_all_succeed_and_leave_the_last_state(tmp_path):
    expiry = WorkspaceExpiry(
        tmp_path,
        0,
        0,
        running=lambda _id: 0,
        known=lambda: [],
        stop=lambda _id: None,
        delete=lambda _id: None,
    )
    await asyncio.gather(*(expiry._save() for _ in range(50)))
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {"last_active": {}, "stopped": {}}
    assert not (tmp_path / STATE_FILE).with_suffix(".tmp").exists()
