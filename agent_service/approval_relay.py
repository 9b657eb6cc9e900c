"""Approval decisions for a run another agent replica drives: left in the store for its owner.

The replica that gets ResolveApproval records the decision and wakes the owner (a notice naming
the run); the owner hands it to its waiting tool call and removes it, or records why it could
not (no approval waiting for that call), which the first replica reports as the same status a
local decision would get.
"""

from __future__ import annotations

import asyncio
import json
import time

from agent_service.approvals import ApprovalBroker, Decision, Resolution
from agent_service.store import Store
from firebox.common.errors import FailedPrecondition, FireboxError, Unavailable

# How long the replica that got the decision waits for the owner to take it.
DELIVERY_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.02


def _encode(resolution: Resolution) -> bytes:
    return json.dumps(
        {
            "decision": resolution.decision.value,
            "reason": resolution.reason,
            "edited_command": resolution.edited_command,
        }
    ).encode()


def _decode(data: bytes) -> Resolution:
    fields = json.loads(data)
    return Resolution(Decision(fields["decision"]), fields["reason"], fields["edited_command"])


class ApprovalRelay:
    """Carries decisions between replicas through the store."""

    def __init__(self, store: Store, broker: ApprovalBroker) -> None:
        self._store = store
        self._broker = broker

    async def deliver(self, run_id: str, tool_call_id: str, resolution: Resolution) -> None:
        """On a replica that does not drive the run: hand the decision to its owner and wait
        until it is taken (FAILED_PRECONDITION as the owner reports it, UNAVAILABLE if the owner
        does not answer in time)."""
        await self._store.put_approval_request(run_id, tool_call_id, _encode(resolution))
        deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
        while time.monotonic() < deadline:
            outcome = await self._store.approval_request_outcome(run_id, tool_call_id)
            if outcome is None:
                return
            if outcome:
                raise FailedPrecondition(outcome)
            await asyncio.sleep(_POLL_SECONDS)
        await self._store.finish_approval_request(run_id, tool_call_id, "")
        raise Unavailable(
            f"the agent replica running {run_id} did not take the decision within {DELIVERY_WAIT_SECONDS:g}s"
        )

    async def take(self, run_id: str) -> None:
        """On the owner: resolve the waiting tool calls of `run_id` with decisions left for them."""
        for tool_call_id, data in await self._store.approval_requests(run_id):
            outcome = ""
            try:
                self._broker.resolve(run_id, tool_call_id, _decode(data), run_known=True)
            except FireboxError as exc:
                outcome = exc.message
            await self._store.finish_approval_request(run_id, tool_call_id, outcome)
