"""Workspace lifecycle benchmarks, each side by side with the raw docker SDK call in the same run:
create-to-running for an unprepared stock image (scripts/build-stock-images.sh) against a bare
create+start of the same image; pause + resume against the SDK's pause + unpause; a snapshot of a
workspace holding 100 MiB of files against the SDK's commit; fork-to-first-Execute against a
create+start of the committed image and one exec_run; a workspace from a devcontainer with a
Dockerfile, built and then from the cache, against the SDK's build and a create+start.

    python -m bench.workspaces [--quick] [--out bench/results/workspaces.json]

Starts its own executor process (docker backend, no warm pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.executor import IMAGE, ExecutorBench, execute, summary_ms
from bench.services import service
from firebox.client import devcontainer as devcontainer_folder
from firebox.executor.v1 import executor_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
IDLE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]


def stock_image(kind: str) -> str:
    """Build the stock-like images if missing (scripts/build-stock-images.sh) and name one."""
    tag = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-stock-images.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return f"firebox-stock-{kind}:{tag}"


class WorkspaceBench(ExecutorBench):
    """The lifecycle figures against one executor."""

    async def stock_create_to_running(self, image: str, n: int) -> dict[str, Any]:
        """CreateWorkspace of an image made for nobody until RUNNING, against a raw SDK
        create+start of the same image with the same idle entrypoint and no network (as a workspace); alternated, so drift hits
        both alike."""
        ours, raw = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            reply = await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=image))
            ours.append(time.perf_counter() - t0)
            await self.delete(reply.workspace.id)
            t0 = time.perf_counter()
            c = await self._raw_start(image)
            raw.append(time.perf_counter() - t0)
            await asyncio.to_thread(c.remove, force=True)
        a, b = summary_ms(ours), summary_ms(raw)
        return {
            "image": image,
            "firebox": a,
            "docker_sdk": b,
            "ratio_p50": round(a["p50_ms"] / b["p50_ms"], 3),
        }

    async def pause_resume(self, n: int) -> dict[str, Any]:
        """PauseWorkspace + ResumeWorkspace of a workspace with an open session, against the raw
        SDK pause + unpause of a plain container of the same image."""
        ws = (await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=IMAGE))).workspace.id
        await self.stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws))
        c = await self._raw_start(IMAGE)
        ours, raw = [], []
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                await self.stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws))
                await self.stub.ResumeWorkspace(pb.ResumeWorkspaceRequest(workspace_id=ws))
                ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await asyncio.to_thread(c.pause)
                await asyncio.to_thread(c.unpause)
                raw.append(time.perf_counter() - t0)
        finally:
            await self.delete(ws)
            await asyncio.to_thread(c.remove, force=True)
        return _pair(ours, raw)

    async def snapshot_and_fork(self, n: int, mib: int = 100) -> dict[str, Any]:
        """CreateSnapshot of a workspace holding `mib` MiB of files, against the raw SDK commit of
        a container of the same image (which leaves the volume out); then fork-to-first-Execute
        (CreateWorkspace from the snapshot + Execute `true`) against a raw create+start of the
        committed image + exec_run."""
        ws = (await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=IMAGE))).workspace.id
        fill = f"i=0; while [ $i -lt {mib} ]; do head -c 1048576 /dev/urandom > f$i; i=$((i+1)); done"
        await self._run(ws, fill)
        c = await self._raw_start(IMAGE)
        snap_ours, snap_raw, fork_ours, fork_raw = [], [], [], []
        try:
            for i in range(n):
                t0 = time.perf_counter()
                snap = (await self.stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws))).snapshot
                snap_ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                image = await asyncio.to_thread(c.commit, repository="firebox-bench-raw", tag=str(i))
                snap_raw.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                fork = (
                    await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(snapshot_id=snap.id))
                ).workspace
                await self._run(fork.id, "true")
                fork_ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                raw = await self._raw_start(image.id)
                await asyncio.to_thread(raw.exec_run, ["true"])
                fork_raw.append(time.perf_counter() - t0)

                await self.delete(fork.id)
                await self.stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.id))
                await asyncio.to_thread(raw.remove, force=True)
                await asyncio.to_thread(self.docker.images.remove, image.id, force=True)
        finally:
            await self.delete(ws)
            await asyncio.to_thread(c.remove, force=True)
        return {
            "files_mib": mib,
            "snapshot": _pair(snap_ours, snap_raw),
            "fork_to_first_execute": _pair(fork_ours, fork_raw),
        }

    async def turn_snapshot(self, n: int, kib: int = 1024) -> dict[str, Any]:
        """What the agent's snapshot before each user turn costs (agent_service/turn_snapshots.py:
        one CreateSnapshot of the session's workspace): a workspace holding a small project
        (`kib` KiB of files in 64 files), one file changed between turns as a tool would. Time
        per snapshot, and its disk: the /workspace copy (files_bytes) plus the commit's own
        image layer."""
        ws = (await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=IMAGE))).workspace.id
        per = kib // 64
        await self._run(
            ws, f"mkdir -p src; for i in $(seq 64); do head -c {per}k /dev/urandom > src/f$i; done"
        )
        base = (await asyncio.to_thread(self.docker.images.get, IMAGE)).attrs["Size"]
        times, disk = [], []
        try:
            for i in range(n):
                await self._run(ws, f"echo turn {i} >> src/f1")
                t0 = time.perf_counter()
                snap = (await self.stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws))).snapshot
                times.append(time.perf_counter() - t0)
                layer = (await asyncio.to_thread(self.docker.images.get, snap.image)).attrs["Size"] - base
                disk.append(snap.files_bytes + max(layer, 0))
                await self.stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.id))
        finally:
            await self.delete(ws)
        return {
            "files_kib": kib,
            "snapshot": summary_ms(times),
            "disk_bytes_p50": sorted(disk)[len(disk) // 2],
        }

    async def devcontainer_build(self, n: int, data_mib: int = 1) -> dict[str, Any]:
        """CreateWorkspace from a devcontainer folder whose Dockerfile COPYs `data_mib` MiB and a
        fresh nonce (so each round builds): the first create (archive the context, build, create)
        against the raw SDK's build of the same context + create+start; then a second create of
        the same folder (the image is reused: nothing built) against a raw create+start."""
        first, cached, raw_build, raw_start = [], [], [], []
        made: list[str] = []
        with tempfile.TemporaryDirectory(prefix="firebox-bench-devc-") as tmp:
            root = Path(tmp)
            (root / ".devcontainer").mkdir()
            (root / ".devcontainer" / "Dockerfile").write_text(
                f"FROM {IMAGE}\nRUN mkdir -p /opt/app\nCOPY data.bin nonce /opt/app/\n"
            )
            (root / ".devcontainer" / "devcontainer.json").write_text(
                '{"build": {"dockerfile": "Dockerfile", "context": ".."}}'
            )
            (root / "data.bin").write_bytes(os.urandom(data_mib * 1024 * 1024))
            try:
                for i in range(n):
                    (root / "nonce").write_text(secrets.token_hex(8))
                    t0 = time.perf_counter()
                    given = await asyncio.to_thread(devcontainer_folder.load, root)
                    reply = await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=given))
                    first.append(time.perf_counter() - t0)
                    made.append(reply.workspace.image)
                    await self.delete(reply.workspace.id)
                    t0 = time.perf_counter()
                    given = await asyncio.to_thread(devcontainer_folder.load, root)
                    reply = await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=given))
                    cached.append(time.perf_counter() - t0)
                    await self.delete(reply.workspace.id)

                    (root / "nonce").write_text(secrets.token_hex(8))
                    tag = f"firebox-bench-build:{i}"
                    t0 = time.perf_counter()
                    context = await asyncio.to_thread(devcontainer_folder.archive, root)
                    await asyncio.to_thread(self._raw_build, context, tag)
                    c = await self._raw_start(tag)
                    raw_build.append(time.perf_counter() - t0)
                    await asyncio.to_thread(c.remove, force=True)
                    t0 = time.perf_counter()
                    c = await self._raw_start(tag)
                    raw_start.append(time.perf_counter() - t0)
                    await asyncio.to_thread(c.remove, force=True)
                    await asyncio.to_thread(self.docker.images.remove, tag, force=True)
            finally:
                for image in made:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.docker.images.remove, image, force=True)
        return {
            "context_mib": data_mib,
            "first_create": _pair(first, raw_build),
            "cached_create": _pair(cached, raw_start),
        }

    def _raw_build(self, context: bytes, tag: str) -> None:
        for chunk in self.docker.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            encoding="gzip",
            dockerfile=".devcontainer/Dockerfile",
            tag=tag,
            rm=True,
            decode=True,
        ):
            assert "error" not in chunk, chunk

    async def _raw_start(self, image: str) -> Any:
        """The raw SDK's side: a container of `image` as a workspace is made (the idle entrypoint,
        an init, no network), created and started."""
        c = await asyncio.to_thread(
            self.docker.containers.create, image, entrypoint=IDLE, init=True, network_mode="none"
        )
        await asyncio.to_thread(c.start)
        return c

    async def _run(self, workspace_id: str, script: str) -> None:
        _, _, final = await execute(self.stub, workspace_id=workspace_id, script=script)
        assert final.exit_code.value == 0, f"{script!r} failed"


def _pair(ours: list[float], raw: list[float]) -> dict[str, Any]:
    a, b = summary_ms(ours), summary_ms(raw)
    return {"firebox": a, "docker_sdk": b, "ratio_p50": round(a["p50_ms"] / b["p50_ms"], 3)}


async def bench_workspaces(target: str, quick: bool) -> dict[str, Any]:
    b = WorkspaceBench(target)
    try:
        n = 5 if quick else 15
        results: dict[str, Any] = {"stock_create_to_running": {}}
        for kind in ("busybox", "debian"):
            image = await asyncio.to_thread(stock_image, kind)
            results["stock_create_to_running"][kind] = await b.stock_create_to_running(image, n)
        results["pause_resume"] = await b.pause_resume(n * 4)
        results["snapshot_and_fork"] = await b.snapshot_and_fork(2 if quick else 5)
        results["turn_snapshot"] = await b.turn_snapshot(3 if quick else 15)
        results["devcontainer_build"] = await b.devcontainer_build(2 if quick else 5)
        return results
    finally:
        await b.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--out", type=Path, default=Path("bench/results/workspaces.json"))
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="firebox-bench-ws-") as tmp,
        service("firebox-executor", ["--backend", "docker", "--log-level", "warning"], Path(tmp)) as (
            target,
            _,
        ),
    ):
        results = asyncio.run(bench_workspaces(target, args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
