"""The agent's executors: one or several replicas, with every workspace routed to its owner.

`--executor` names one address, a comma-separated list, or a DNS name that resolves to several
addresses (in Swarm, `tasks.executor:50051` with `endpoint_mode: dnsrr`). The pool resolves it at
start, every `resolve_interval` seconds and when a call finds a replica unavailable; it keeps one
channel per address and learns each replica's instance id (its `<config-dir>/instance-id`, the owner
label of its containers) through GetServerInfo.

A workspace belongs to the replica that created it. The pool records workspace -> instance id in
the agent's store when it creates one, and when it finds an unknown workspace by asking the
replicas (a workspace made directly on an executor). Every call for a workspace goes to its owner;
an owner that is gone fails at once with UNAVAILABLE naming the workspace and the replica. New
workspaces go to the replica with the fewest workspaces, ties taken in turn.

The pool offers the same calls as `ExecutorClient`, routed; the agent's tools and loop are typed
against the pool, which is what they are given (one executor is a pool of one).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from agent_service.executor_client import (
    HALF_CLOSE_LINGER_SECONDS,
    ExecutionOutcome,
    ExecutorClient,
    ExecutorError,
    ProcessOutput,
)
from agent_service.store import Store
from firebox.common.errors import FireboxError
from firebox.common.logging import get_logger
from firebox.common.tls import ClientTLS
from firebox.executor.v1 import executor_pb2

# Workspace owners kept in memory (least recently used beyond this are read from the store again).
OWNER_CACHE_SIZE = 10_000
_UNRECORDED = ("", "")

log = get_logger("firebox.agent.executor_pool")

# GetServerInfo of one replica while refreshing: a replica slower than this counts as unreachable.
INFO_DEADLINE_SECONDS = 2.0
# A refresh asked for by a failing call happens at most this often.
MIN_REFRESH_GAP_SECONDS = 1.0
# Asking the replicas who owns an unknown workspace.
LOOKUP_DEADLINE_SECONDS = 5.0


@dataclass
class Replica:
    """One executor replica: where it is, who it is, how loaded it was when last asked."""

    address: str
    client: ExecutorClient
    instance_id: str | None = None
    workspace_count: int = 0
    reachable: bool = False

    @property
    def key(self) -> str:
        """What owns workspaces: the instance id, or the address of an executor too old to tell."""
        return self.instance_id or f"address:{self.address}"


def _split_targets(spec: str) -> list[tuple[str, int]]:
    targets = []
    for part in spec.split(","):
        host, _, port = part.strip().rpartition(":")
        targets.append((host.strip("[]"), int(port)))
    return targets


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ExecutorPool:
    """The executor replicas behind one agent, and the routing of workspaces to them."""

    def __init__(
        self,
        spec: str,
        store: Store,
        auth_token: str | None = None,
        tls: ClientTLS | None = None,
        resolve_interval: float = 10.0,
    ) -> None:
        self.target = spec
        self._targets = _split_targets(spec)
        self._store = store
        self._auth_token = auth_token
        self._tls = tls
        self._resolve_interval = resolve_interval
        self._replicas: dict[str, Replica] = {}
        # Workspace -> (owner instance id, address): a workspace never moves, so the store is read
        # once per workspace rather than on every call (a thread hop on the Execute path).
        self._owners: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._refresh_lock = asyncio.Lock()
        self._last_refresh = 0.0
        self._turn = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Fail at start on a bad TLS file rather than at the first call.
        if tls is not None:
            tls.credentials()

    # -- replicas --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the replicas (without asking them: an executor still starting must not delay
        the agent), then resolve and ask them in the background, at once and every interval."""
        for address in await self._resolve():
            self._replicas.setdefault(address, Replica(address, self._client(address)))
        self._task = asyncio.create_task(self._refresh_forever(), name="executor-pool-refresh")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in list(self._replicas.values()):
            await replica.client.close()
        self._replicas.clear()

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh(force=True)
            except Exception as exc:  # a failed round is retried at the next one
                log.warning("executor_refresh_failed", error=repr(exc))
            await asyncio.sleep(self._resolve_interval)

    async def _resolve(self) -> list[str]:
        """The addresses the spec names now. A name resolving to one address is dialled by name
        (gRPC then follows it itself, and TLS checks that name); to several, each address."""
        loop = asyncio.get_running_loop()
        addresses: list[str] = []
        for host, port in self._targets:
            if _is_ip(host) or host == "localhost":
                addresses.append(_join(host, port))
                continue
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                log.warning("executor_name_unresolved", host=host, error=str(exc))
                continue
            ips = sorted({str(info[4][0]) for info in infos})
            if len(ips) <= 1:
                addresses.append(_join(host, port))
            else:
                addresses.extend(_join(ip, port) for ip in ips)
        return list(dict.fromkeys(addresses))

    def _client(self, address: str) -> ExecutorClient:
        tls = self._tls
        host = address.rpartition(":")[0].strip("[]")
        if tls is not None and tls.server_name is None and _is_ip(host) and len(self._targets) == 1:
            # Replicas found through a name are dialled by IP: check the name in their certificate.
            name = self._targets[0][0]
            if not _is_ip(name):
                tls = ClientTLS(tls.ca, tls.cert, tls.key, name, tls.flag_prefix)
        return ExecutorClient(address, self._auth_token, tls)

    async def refresh(self, *, force: bool = False) -> None:
        """Resolve the spec again, open channels to new replicas, close those of gone ones, and
        ask every replica for its instance id and workspace count. Without `force`, at most once
        a second (a burst of failing calls triggers one refresh)."""
        async with self._refresh_lock:
            if self._closed:
                return
            if not force and time.monotonic() - self._last_refresh < MIN_REFRESH_GAP_SECONDS:
                return
            addresses = await self._resolve()
            if addresses:  # a failed lookup keeps the replicas known so far
                for gone in set(self._replicas) - set(addresses):
                    replica = self._replicas.pop(gone)
                    log.info("executor_replica_gone", address=gone, instance_id=replica.instance_id)
                    await replica.client.close()
                for address in addresses:
                    if address not in self._replicas:
                        self._replicas[address] = Replica(address, self._client(address))
            await asyncio.gather(*(self._ask(r) for r in list(self._replicas.values())))
            self._last_refresh = time.monotonic()

    async def _ask(self, replica: Replica) -> None:
        try:
            info = await replica.client.server_info_now(deadline=INFO_DEADLINE_SECONDS)
        except FireboxError as exc:
            if replica.reachable:
                log.warning("executor_replica_unreachable", address=replica.address, error=exc.message)
            replica.reachable = False
            return
        if not replica.reachable or replica.instance_id != (info.instance_id or None):
            log.info("executor_replica_ready", address=replica.address, instance_id=info.instance_id)
        replica.instance_id = info.instance_id or None
        replica.workspace_count = info.workspace_count
        replica.reachable = True

    def replicas(self) -> list[Replica]:
        """The replicas known now, by address."""
        return [self._replicas[a] for a in sorted(self._replicas)]

    def _by_key(self, key: str) -> Replica | None:
        for replica in self._replicas.values():
            if replica.reachable and replica.key == key:
                return replica
        return None

    def _reachable(self) -> list[Replica]:
        return [r for r in self.replicas() if r.reachable]

    async def _any(self) -> ExecutorClient:
        """A reachable replica, for calls that are the same everywhere (tools, server info)."""
        reachable = self._reachable()
        if not reachable:
            await self.refresh()
            reachable = self._reachable()
        if not reachable:
            known = ", ".join(self._replicas) or "none resolved"
            raise ExecutorError(
                grpc.StatusCode.UNAVAILABLE,
                f"no executor replica is reachable at {self.target} (replicas: {known}); check "
                "--executor / FIREBOX_EXECUTOR and that the executor is running",
            )
        return reachable[0].client

    # -- routing ---------------------------------------------------------------------------

    async def _owner(self, workspace_id: str) -> tuple[str, str] | None:
        """The recorded owner, or None. Misses are cached too (as _UNRECORDED) until the workspace
        is recorded, so a workspace made directly on a lone executor costs no store read per call."""
        owner = self._owners.get(workspace_id)
        if owner is None:
            owner = await self._store.get_workspace_owner(workspace_id) or _UNRECORDED
            self._cache_owner(workspace_id, owner)
        else:
            self._owners.move_to_end(workspace_id)
        return None if owner is _UNRECORDED else owner

    async def _remember(self, workspace_id: str, replica: Replica) -> None:
        await self._store.put_workspace_owner(workspace_id, replica.key, replica.address)
        self._cache_owner(workspace_id, (replica.key, replica.address))

    def _cache_owner(self, workspace_id: str, owner: tuple[str, str]) -> None:
        self._owners[workspace_id] = owner
        self._owners.move_to_end(workspace_id)
        while len(self._owners) > OWNER_CACHE_SIZE:
            self._owners.popitem(last=False)

    async def _route(self, workspace_id: str) -> Replica:
        """The replica that owns `workspace_id`, learning the owner when unknown."""
        owner = await self._owner(workspace_id)
        if owner is not None:
            key, address = owner
            replica = self._by_key(key)
            if replica is None:
                await self.refresh()
                replica = self._by_key(key)
            if replica is None:
                raise ExecutorError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"workspace {workspace_id} belongs to executor replica {key} (last at {address}), "
                    "which is not reachable now; it answers again when that replica is back",
                )
            return replica
        if len(self._replicas) == 1:
            # One executor: it is the owner if anyone is; it answers NOT_FOUND (or UNAVAILABLE,
            # naming its address) itself.
            return next(iter(self._replicas.values()))
        if not self._reachable():
            await self.refresh()
        return await self._discover(workspace_id)

    async def _discover(self, workspace_id: str) -> Replica:
        """Ask every reachable replica for the workspace; remember the one that has it."""
        reachable = self._reachable()

        async def has(replica: Replica) -> bool:
            try:
                await replica.client.get_workspace(workspace_id, deadline=LOOKUP_DEADLINE_SECONDS)
            except ExecutorError as exc:
                if exc.code != grpc.StatusCode.NOT_FOUND:
                    log.warning("workspace_lookup_failed", address=replica.address, error=exc.message)
                return False
            except FireboxError:
                return False
            return True

        found = await asyncio.gather(*(has(r) for r in reachable))
        for replica, yes in zip(reachable, found, strict=True):
            if yes:
                await self._remember(workspace_id, replica)
                log.info("workspace_owner_found", workspace_id=workspace_id, instance_id=replica.key)
                return replica
        unreachable = [a for a, r in self._replicas.items() if not r.reachable]
        if unreachable or not reachable:
            raise ExecutorError(
                grpc.StatusCode.UNAVAILABLE,
                f"workspace {workspace_id} is not on any reachable executor replica, and "
                f"{', '.join(unreachable) or self.target} cannot be asked now",
            )
        raise ExecutorError(grpc.StatusCode.NOT_FOUND, f"workspace {workspace_id} not found on any executor")

    async def _call(self, workspace_id: str, call: Callable[[ExecutorClient], object]) -> object:
        """Run `call` on the workspace's owner; an UNAVAILABLE answer also triggers a refresh."""
        replica = await self._route(workspace_id)
        try:
            return await call(replica.client)  # type: ignore[misc]
        except FireboxError as exc:  # ExecutorError, or ensure_reachable's Unavailable
            raise self._lost(exc, workspace_id, replica) from None

    def _lost(self, exc: FireboxError, workspace_id: str, replica: Replica) -> FireboxError:
        """An UNAVAILABLE answer names the workspace and its replica (and triggers a refresh);
        any other error passes through."""
        if exc.code != grpc.StatusCode.UNAVAILABLE:
            return exc
        if len(self._replicas) > 1:
            replica.reachable = False  # until the refresh says otherwise: route nothing new there
        self._refresh_soon()
        return ExecutorError(
            exc.code, f"workspace {workspace_id} (executor replica {replica.key}): {exc.message}"
        )

    def _refresh_soon(self) -> None:
        task = asyncio.ensure_future(self.refresh())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _choose(self) -> Replica:
        """The replica for a new workspace: fewest workspaces (asked now), ties in turn."""
        await self.refresh(force=True)
        reachable = self._reachable()
        if not reachable:
            await self._any()  # raises the UNAVAILABLE that says what was tried
        fewest = min(r.workspace_count for r in reachable)
        candidates = [r for r in reachable if r.workspace_count == fewest]
        self._turn += 1
        return candidates[self._turn % len(candidates)]

    async def _created(self, replica: Replica, workspace: executor_pb2.Workspace) -> None:
        replica.workspace_count += 1
        await self._remember(workspace.id, replica)
        log.info(
            "workspace_placed", workspace_id=workspace.id, instance_id=replica.key, address=replica.address
        )

    # -- the ExecutorClient calls, routed ----------------------------------------------------

    async def ensure_reachable(self) -> None:
        """Some replica is reachable, or UNAVAILABLE."""
        await self._any()

    async def server_info(self, deadline: float = 5.0) -> executor_pb2.GetServerInfoResponse:
        return await (await self._any()).server_info(deadline)

    async def list_tools(self, deadline: float = 10.0) -> list[executor_pb2.Tool]:
        return await (await self._any()).list_tools(deadline)

    async def list_tools_now(self, deadline: float = 3.0) -> list[executor_pb2.Tool]:
        # Never wait for a refresh here: a run's start must not wait on the executor. A replica not
        # yet asked (just after start) is tried as it is; it fails at once when it is down.
        candidates = self._reachable() or self.replicas()
        if not candidates:
            self._refresh_soon()
            raise ExecutorError(
                grpc.StatusCode.UNAVAILABLE, f"no executor replica resolved from {self.target}"
            )
        return await candidates[0].client.list_tools_now(deadline)

    async def create_workspace(
        self,
        image: str,
        policy: executor_pb2.IsolationPolicy | None,
        labels: Mapping[str, str],
        deadline: float = 120.0,
    ) -> executor_pb2.Workspace:
        replica = await self._choose()
        workspace = await replica.client.create_workspace(image, policy, labels, deadline)
        await self._created(replica, workspace)
        return workspace

    async def create_workspace_from(
        self, request: executor_pb2.CreateWorkspaceRequest, deadline: float = 120.0
    ) -> executor_pb2.CreateWorkspaceResponse:
        # A fork is made where its snapshot is.
        replica = await (self._snapshot_owner(request.snapshot_id) if request.snapshot_id else self._choose())
        response = await replica.client.create_workspace_from(request, deadline)
        await self._created(replica, response.workspace)
        return response

    async def create_workspace_with_progress(
        self, request: executor_pb2.CreateWorkspaceRequest, deadline: float | None
    ) -> AsyncGenerator[executor_pb2.CreateWorkspaceWithProgressResponse, None]:
        """As create_workspace_from, its progress streamed (the replica chosen the same way)."""
        replica = await (self._snapshot_owner(request.snapshot_id) if request.snapshot_id else self._choose())
        async for message in replica.client.create_workspace_with_progress(request, deadline):
            if message.HasField("done"):
                await self._created(replica, message.done.workspace)
            yield message

    async def get_workspace(self, workspace_id: str, deadline: float = 10.0) -> executor_pb2.Workspace:
        return await self._call(workspace_id, lambda c: c.get_workspace(workspace_id, deadline))  # type: ignore[return-value]

    async def pause_workspace(self, workspace_id: str, deadline: float = 60.0) -> executor_pb2.Workspace:
        return await self._call(workspace_id, lambda c: c.pause_workspace(workspace_id, deadline))  # type: ignore[return-value]

    async def resume_workspace(self, workspace_id: str, deadline: float = 60.0) -> executor_pb2.Workspace:
        return await self._call(workspace_id, lambda c: c.resume_workspace(workspace_id, deadline))  # type: ignore[return-value]

    async def create_snapshot(
        self, request: executor_pb2.CreateSnapshotRequest, deadline: float = 600.0
    ) -> executor_pb2.CreateSnapshotResponse:
        return await self._call(request.workspace_id, lambda c: c.create_snapshot(request, deadline))  # type: ignore[return-value]

    async def list_snapshots(
        self, workspace_id: str = "", deadline: float = 10.0
    ) -> list[executor_pb2.Snapshot]:
        """Every reachable replica's snapshots (of one workspace: its owner's only)."""
        if workspace_id:
            return await self._call(workspace_id, lambda c: c.list_snapshots(workspace_id, deadline))  # type: ignore[return-value]
        snapshots: list[executor_pb2.Snapshot] = []
        for _replica, found in await self._snapshots_by_replica(deadline):
            snapshots.extend(found)
        return sorted(snapshots, key=lambda s: (s.create_time.ToNanoseconds(), s.id))

    async def delete_snapshot(self, snapshot_id: str, deadline: float = 60.0) -> None:
        replica = await self._snapshot_owner(snapshot_id)
        await replica.client.delete_snapshot(snapshot_id, deadline)

    async def _snapshots_by_replica(
        self, deadline: float
    ) -> list[tuple[Replica, list[executor_pb2.Snapshot]]]:
        await self.refresh()
        if not self._replicas:
            await self._any()  # raises the UNAVAILABLE that says what was tried
        reachable = self._reachable() or self.replicas()
        results = await asyncio.gather(
            *(r.client.list_snapshots("", deadline) for r in reachable), return_exceptions=True
        )
        answered = [
            (r, found)
            for r, found in zip(reachable, results, strict=True)
            if not isinstance(found, BaseException)
        ]
        if not answered:
            failure = next(f for f in results if isinstance(f, BaseException))
            raise failure
        return answered

    async def _snapshot_owner(self, snapshot_id: str) -> Replica:
        """The replica holding `snapshot_id`: with one executor, it (which answers NOT_FOUND
        itself); with several, the one whose list has it."""
        if len(self._replicas) == 1:
            return next(iter(self._replicas.values()))
        for replica, found in await self._snapshots_by_replica(10.0):
            if any(s.id == snapshot_id for s in found):
                return replica
        raise ExecutorError(
            grpc.StatusCode.NOT_FOUND, f"snapshot {snapshot_id!r} not found on any reachable executor"
        )

    async def list_workspaces(self, deadline: float = 10.0) -> list[executor_pb2.Workspace]:
        """Every reachable replica's workspaces (their owners recorded on the way); UNAVAILABLE
        only when no replica answers."""
        await self.refresh()
        if not self._replicas:
            await self._any()  # raises the UNAVAILABLE that says what was tried
        reachable = self._reachable() or self.replicas()
        results = await asyncio.gather(
            *(r.client.list_workspaces(deadline) for r in reachable), return_exceptions=True
        )
        workspaces: list[executor_pb2.Workspace] = []
        failures: list[BaseException] = []
        for replica, result in zip(reachable, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(result)
                continue
            for workspace in result:
                known = await self._owner(workspace.id)
                if known is None or known[0] != replica.key:
                    await self._remember(workspace.id, replica)
                workspaces.append(workspace)
        if failures and len(failures) == len(reachable):
            raise failures[0]
        return workspaces

    async def delete_workspace(self, workspace_id: str, deadline: float = 60.0) -> None:
        await self._call(workspace_id, lambda c: c.delete_workspace(workspace_id, deadline))
        self._owners.pop(workspace_id, None)
        await self._store.delete_workspace_owner(workspace_id)

    async def set_writable_paths(
        self, workspace_id: str, writable_paths: list[str], deadline: float = 60.0
    ) -> executor_pb2.Workspace:
        return await self._call(
            workspace_id, lambda c: c.set_writable_paths(workspace_id, writable_paths, deadline)
        )  # type: ignore[return-value]

    async def create_shell_session(self, workspace_id: str, deadline: float = 60.0) -> executor_pb2.Session:
        return await self._call(workspace_id, lambda c: c.create_shell_session(workspace_id, deadline))  # type: ignore[return-value]

    async def start_process(self, *, workspace_id: str, **fields: str) -> str:
        return await self._call(workspace_id, lambda c: c.start_process(workspace_id=workspace_id, **fields))  # type: ignore[return-value]

    async def read_process(self, *, workspace_id: str, **fields: Any) -> ProcessOutput:
        """As ExecutorClient.read_process, on the replica that owns the workspace."""
        return await self._call(workspace_id, lambda c: c.read_process(workspace_id=workspace_id, **fields))  # type: ignore[return-value]

    async def stop_process(self, execution_id: str, *, workspace_id: str) -> executor_pb2.ExecutionInfo:
        return await self._call(
            workspace_id, lambda c: c.stop_process(execution_id, workspace_id=workspace_id)
        )  # type: ignore[return-value]

    async def step(self, request: executor_pb2.StepRequest, deadline: float) -> executor_pb2.StepResponse:
        return await self._call(request.workspace_id, lambda c: c.step(request, deadline))  # type: ignore[return-value]

    async def download_file(
        self, workspace_id: str, path: str, limit: int, deadline: float = 60.0
    ) -> tuple[executor_pb2.FileInfo, bytes]:
        return await self._call(workspace_id, lambda c: c.download_file(workspace_id, path, limit, deadline))  # type: ignore[return-value]

    async def upload_file(
        self, workspace_id: str, path: str, data: bytes, chunk: int = 1024 * 1024, deadline: float = 60.0
    ) -> executor_pb2.UploadFileResponse:
        return await self._call(
            workspace_id, lambda c: c.upload_file(workspace_id, path, data, chunk, deadline)
        )  # type: ignore[return-value]

    async def run_script(self, *, workspace_id: str, **kwargs: object) -> ExecutionOutcome:
        return await self._call(workspace_id, lambda c: c.run_script(workspace_id=workspace_id, **kwargs))  # type: ignore[return-value,arg-type]

    async def forward_execute(
        self,
        requests: AsyncIterator[executor_pb2.ExecuteRequest],
        deadline: float | None,
    ) -> AsyncGenerator[executor_pb2.ExecuteResponse, None]:
        """Proxy one Execute stream to the owner of the workspace its first request names."""
        try:
            first = await anext(aiter(requests))
        except StopAsyncIteration:
            raise ExecutorError(
                grpc.StatusCode.INVALID_ARGUMENT, "request: the stream closed before the first message"
            ) from None
        try:
            if not first.workspace_id:
                raise ExecutorError(
                    grpc.StatusCode.INVALID_ARGUMENT, "workspace_id: required in the first message"
                )
            replica = await self._route(first.workspace_id)
        except FireboxError:
            await _until_half_closed(requests)
            raise
        try:
            async for response in replica.client.forward_execute(first, requests, deadline):
                yield response
        except FireboxError as exc:
            raise self._lost(exc, first.workspace_id, replica) from None


async def _until_half_closed(requests: AsyncIterator[executor_pb2.ExecuteRequest]) -> None:
    """Read (and drop) a refused call's requests until its client half-closes, for at most
    HALF_CLOSE_LINGER_SECONDS: a client write that crosses the end of the call fails in gRPC's
    core and turns the client's status into INTERNAL, hiding the refusal."""
    with contextlib.suppress(TimeoutError, grpc.RpcError):
        async with asyncio.timeout(HALF_CLOSE_LINGER_SECONDS):
            async for _ in requests:
                pass
