"""CreateWorkspaceWithProgress's output queue (executor_service/steps.py): bounded, and what it
leaves out is counted, never lost silently."""

from __future__ import annotations

from executor_service.steps import PROGRESS_BYTES, SetupProgress

CHUNK = 256 * 1024


async def test_a_reader_that_does_not_keep_up_gets_at_most_the_bound_and_the_count_of_the_rest():
    progress = SetupProgress()
    for _ in range(12):  # 3 MiB, nobody reading
        progress.add("build", b"x" * CHUNK, b"")
    progress.add("postCreateCommand", b"", b"late\n")  # another step: over the bound, counted too
    progress.end()
    messages = []
    while (message := await progress.next()) is not None:
        messages.append(message)
    kept = sum(len(m.stdout) + len(m.stderr) for m in messages)
    skipped = sum(m.skipped_bytes for m in messages)
    assert kept <= PROGRESS_BYTES
    assert kept + skipped == 12 * CHUNK + 5
    # Each step's left-out count arrives, though nothing of the step came after it.
    assert {m.name for m in messages if m.skipped_bytes} == {"build", "postCreateCommand"}


async def test_output_from_a_worker_thread_arrives_in_order():
    import asyncio

    progress = SetupProgress()
    sink = progress.sink("build")
    await asyncio.to_thread(lambda: [sink(f"line {i}\n".encode()) for i in range(100)])
    await asyncio.sleep(0)
    progress.end()
    lines = []
    while (message := await progress.next()) is not None:
        lines.append(message.stdout)
    assert b"".join(lines) == b"".join(f"line {i}\n".encode() for i in range(100))
