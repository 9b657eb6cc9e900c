"""Stop the Docker engine under load: clear errors while it is gone, recovery when it returns.

Runs last (file name) because it takes the engine away from everything on the machine; the engine
is restarted with scripts/start-docker.sh at the end whatever happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_server import REPO, ExecutorProcess, remove_owned_workspaces

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

ENGINE_WORDS = ("docker", "engine")
CLEAR_CODES = {"UNAVAILABLE", "FAILED_PRECONDITION"}


def dockerd_pids() -> list[int]:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def engine_answers() -> bool:
    return subprocess.run(["docker", "version"], capture_output=True).returncode == 0


def start_engine() -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "start-docker.sh")], check=True, timeout=120)


@pytest.fixture
def engine_restored() -> Iterator[None]:
    """Whatever the test does, the engine answers again afterwards."""
    try:
        yield
    finally:
        if not engine_answers():
            start_engine()


class Load:
    """Keeps calling the executor (Execute in a workspace, ListWorkspaces, CreateWorkspace of an
    invalid name) from a thread, recording each failure as (code, details, seconds since start)."""

    def __init__(self, target: str, workspace_id: str) -> None:
        self.target = target
        self.workspace_id = workspace_id
        self.ok = 0
        self.failures: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            calls = (
                (
                    "Execute",
                    lambda: list(
                        stub.Execute(
                            iter([pb.ExecuteRequest(workspace_id=self.workspace_id, script="echo x")]),
                            timeout=20,
                        )
                    ),
                ),
                ("ListWorkspaces", lambda: stub.ListWorkspaces(pb.ListWorkspacesRequest(), timeout=20)),
                (
                    "GetWorkspace",
                    lambda: stub.GetWorkspace(
                        pb.GetWorkspaceRequest(workspace_id=self.workspace_id), timeout=20
                    ),
                ),
                (
                    "CreateWorkspace",
                    lambda: stub.CreateWorkspace(pb.CreateWorkspaceRequest(), timeout=20),
                ),
            )
            while not self._stop.is_set():
                for name, call in calls:
                    try:
                        result = call()
                        self.ok += 1
                        if name == "CreateWorkspace":
                            stub.DeleteWorkspace(
                                pb.DeleteWorkspaceRequest(workspace_id=result.workspace.id), timeout=60
                            )
                    except grpc.RpcError as exc:
                        self.failures.append((name, exc.code().name, exc.details() or ""))
                self._stop.wait(0.05)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_engine_stopped_under_load_then_back(tmp_path: Path, engine_restored: None, record_property) -> None:
    executor = ExecutorProcess(tmp_path / "executor", backend="docker")
    try:
        executor.start()
        with grpc.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="engine"), timeout=60).workspace
            list(
                stub.Execute(
                    iter([pb.ExecuteRequest(workspace_id=ws.id, script="echo kept > keep")]), timeout=30
                )
            )
            with Load(executor.target, ws.id) as load:
                time.sleep(2)
                ok_before = load.ok
                for pid in dockerd_pids():
                    os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 60
                while dockerd_pids() and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert not dockerd_pids(), "dockerd did not stop"
                gone_at = len(load.failures)
                time.sleep(5)
                during = load.failures[gone_at:]
                start_engine()
                # Recovery: the same calls succeed again within a minute of the engine's return.
                back = time.monotonic()
                recovered_ok = load.ok
                while time.monotonic() - back < 60 and load.ok < recovered_ok + 8:
                    time.sleep(0.5)
                recovered_in = time.monotonic() - back
            codes = Counter((name, code) for name, code, _ in during)
            summary = (
                f"engine stopped: {len(during)} failures in 5 s {dict(codes)}; "
                f"{load.ok - recovered_ok} successes within {recovered_in:.1f}s of its return"
            )
            print(summary)
            for (name, code), count in Counter((n, c) for n, c, _ in load.failures).items():
                example = next(d for n, c, d in load.failures if (n, c) == (name, code))
                print(f"  {count} x {name}: {code}: {example[:160]}")
            record_property("docker_engine", summary)
            assert ok_before > 0
            assert during, "no call failed while the engine was gone"
            unclear = [f for f in load.failures if f[1] not in CLEAR_CODES]
            assert not unclear, unclear[:5]
            unnamed = [f for f in during if not any(w in f[2].lower() for w in ENGINE_WORDS)]
            assert not unnamed, unnamed[:5]
            assert load.ok >= recovered_ok + 8, summary
            # The workspace is there after the engine's restart, with its files, once started again.
            got = stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id), timeout=30).workspace
            if got.status != pb.WORKSPACE_STATUS_RUNNING:
                stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id), timeout=60)
            first = pb.ExecuteRequest(workspace_id=ws.id, argv=["cat", "keep"])
            assert b"".join(r.stdout_data for r in stub.Execute(iter([first]), timeout=30)) == b"kept\n"
    finally:
        executor.kill()
        if not engine_answers():
            start_engine()
        remove_owned_workspaces(tmp_path / "executor")
