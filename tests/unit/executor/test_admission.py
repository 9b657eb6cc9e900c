"""Admission of sessionless executions: bounded running and waiting (executor_service/admission.py)."""

from __future__ import annotations

import asyncio

import pytest

from executor_service.admission import Admission, AdmissionLimits
from firebox.common.errors import ResourceExhausted


async def test_runs_up_to_the_limits_then_queues_in_order_then_refuses_with_a_retry_delay() -> None:
    admission = Admission(
        AdmissionLimits(running_per_workspace=2, queued_per_workspace=2, running=10, queued=10)
    )
    first, second = await admission.admit("a"), await admission.admit("a")
    order: list[int] = []

    async def wait(n: int) -> None:
        ticket = await admission.admit("a")
        order.append(n)
        ticket.release()

    waiters = [asyncio.create_task(wait(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    assert admission.queued == 2 and admission.running_in("a") == 2
    with pytest.raises(ResourceExhausted, match="too many executions waiting") as info:
        await admission.admit("a")
    assert info.value.retry_after and info.value.retry_after > 0
    # Another workspace is not held up by a's queue.
    other = await admission.admit("b")
    first.release()
    second.release()
    await asyncio.gather(*waiters)
    assert order == [1, 2]
    other.release()
    assert admission.running == 0 and admission.queued == 0


async def test_the_executor_wide_limits_hold_across_workspaces() -> None:
    admission = Admission(
        AdmissionLimits(running_per_workspace=5, queued_per_workspace=5, running=2, queued=1)
    )
    tickets = [await admission.admit("a"), await admission.admit("b")]
    waiter = asyncio.create_task(admission.admit("c"))
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted):
        await admission.admit("d")
    tickets[0].release()
    tickets.append(await waiter)
    for ticket in tickets:
        ticket.release()
        ticket.release()  # idempotent
    assert admission.running == 0


async def test_a_wait_past_the_queue_timeout_is_refused_and_a_cancelled_wait_leaves_no_trace() -> None:
    admission = Admission(AdmissionLimits(running_per_workspace=1, queue_timeout=0.05))
    held = await admission.admit("a")
    with pytest.raises(ResourceExhausted, match=r"within 0\.05s"):
        await admission.admit("a")
    waiter = asyncio.create_task(admission.admit("a"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert admission.queued == 0
    held.release()
    assert admission.running == 0
    (await admission.admit("a")).release()
