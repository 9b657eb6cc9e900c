"""A warm pool of ready workspaces: running containers of the default image and policy, made ahead
so that CreateWorkspace hands one out in milliseconds instead of waiting for a container start.

- Only requests for the pool's image and policy with no env take from it (anything else would need
  a different container); name and labels are applied on take (the backend's `claim`).
- `take()` is synchronous, so on the event loop two creates can never get the same member.
- A background task refills the pool after every take, one container at a time (a burst of
  creates on a small machine would slow the commands running there).
- Members carry the pool label; at start-up the backend reports the ones nobody took, and the pool
  takes back those that match its key (up to its size) and removes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict

from executor_service.backend import Policy, WorkspaceBackend, WorkspaceInfo, WorkspaceSpec
from firebox.common.logging import get_logger

log = get_logger("executor.pool")

# After a failed refill (engine down, image missing), wait before trying again; doubles up to the max.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


def pool_key(owner: str, image: str, policy: Policy) -> str:
    """What a member was made for: the same key means interchangeable containers."""
    text = json.dumps({"owner": owner, "image": image, "policy": asdict(policy)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class WarmPool:
    """Up to `size` running workspaces of `image` and `policy`, waiting to be taken."""

    def __init__(
        self,
        backend: WorkspaceBackend,
        size: int,
        image: str,
        policy: Policy,
        new_id: Callable[[], str],
    ) -> None:
        self.backend = backend
        self.size = size
        self.image = image
        self.policy = policy
        self.key = pool_key(backend.owner, image, policy)
        self._new_id = new_id
        self._ready: deque[WorkspaceInfo] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.taken = 0

    @property
    def ready(self) -> int:
        return len(self._ready)

    def matches(self, image: str, policy: Policy, env: dict[str, str]) -> bool:
        return self.size > 0 and not env and image == self.image and policy == self.policy

    def take(self) -> WorkspaceInfo | None:
        """A ready member, now no longer the pool's; None when the pool is empty. Synchronous on
        purpose: nothing can interleave between looking and removing."""
        if not self._ready:
            self._wake.set()
            return None
        member = self._ready.popleft()
        self.taken += 1
        self._wake.set()
        return member

    async def adopt(self, members: list[WorkspaceInfo]) -> None:
        """Take back members left by an earlier run that match this pool; remove the others."""
        for member in members:
            if member.pool_key == self.key and member.state == "running" and len(self._ready) < self.size:
                self._ready.append(member)
                log.info("pool_member_adopted", workspace_id=member.id)
                continue
            try:
                await self.backend.delete(member.id)
                log.info("pool_member_removed", workspace_id=member.id, state=member.state)
            except Exception as exc:  # an engine hiccup: the next start tries again
                log.warning("pool_member_not_removed", workspace_id=member.id, error=repr(exc))

    def start(self) -> None:
        """Begin filling in the background."""
        if self.size > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refill(), name="warm-pool-refill")
            self._wake.set()

    async def close(self) -> None:
        """Stop refilling; waiting members stay running and are adopted by the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refill(self) -> None:
        retry = RETRY_FIRST_SECONDS
        while True:
            await self._wake.wait()
            self._wake.clear()
            while len(self._ready) < self.size:
                spec = WorkspaceSpec(id=self._new_id(), name="", image=self.image, policy=self.policy)
                try:
                    member = await self.backend.create(spec, pool_key=self.key)
                except Exception as exc:
                    log.warning("pool_refill_failed", error=repr(exc), retry_seconds=retry)
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_MAX_SECONDS)
                    continue
                retry = RETRY_FIRST_SECONDS
                self._ready.append(member)
                log.debug("pool_member_ready", workspace_id=member.id, ready=len(self._ready))
