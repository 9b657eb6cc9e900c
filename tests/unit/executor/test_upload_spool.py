"""The upload spool on the executor's disk is bounded in total, not only per file (issue 15, 5)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor_service.files import WorkspaceFiles
from firebox.common.errors import ResourceExhausted

KiB = 1024


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // (64 * KiB)):
        yield b"x" * (64 * KiB)


async def test_uploads_in_flight_share_one_spool_limit_and_give_it_back(tmp_path: Path) -> None:
    files = WorkspaceFiles(
        None, max_file_bytes=10 * 1024 * KiB, spool_dir=tmp_path, max_spool_bytes=1024 * KiB
    )  # type: ignore[arg-type]
    with files.upload_slot() as first:
        spool, size, _ = await files.spool(b"", _chunks(640 * KiB), first)
        assert size == 640 * KiB and files.spooled == 640 * KiB
        with (
            files.upload_slot() as second,
            pytest.raises(ResourceExhausted, match="--max-spool-bytes") as info,
        ):
            await files.spool(b"", _chunks(640 * KiB), second)
        assert info.value.retry_after
        # The refused upload's part is given back and its spool file removed.
        assert files.spooled == 640 * KiB and os.listdir(tmp_path) == [spool.name]
    assert files.spooled == 0
    with files.upload_slot() as third:
        _, size, _ = await files.spool(b"", _chunks(960 * KiB), third)
        assert size == 960 * KiB
