"""Benchmarks of terminals and long-lived processes: PTY round trip (a key to its echo), stdin
throughput into a session command and into a PTY, attach-replay latency of a background
execution, and ForwardPort throughput against `docker exec` piping the same bytes, in one run.

    python -m bench.terminals [--quick] [--plain]

`--plain` also measures the plain `true` round trip and 1-session throughput (to compare a
branch with main: plain executions must not get slower). `make bench` runs these too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.executor import ExecutorBench, summary_ms
from bench.services import service
from executor_service.backend import LABEL_ID
from firebox.executor.v1 import executor_pb2 as pb

MIB = 1024 * 1024


class _Stream:
    """A bidi call driven by hand: a queue of requests, reads in the caller's task."""

    def __init__(self, method: Any, first: Any) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queue.put_nowait(first)
        self.call = method(self._requests())

    async def _requests(self) -> Any:
        while (item := await self.queue.get()) is not None:
            yield item

    def send(self, request: Any) -> None:
        self.queue.put_nowait(request)


class TerminalBench:
    def __init__(self, bench: ExecutorBench) -> None:
        self.b = bench
        self.stub = bench.stub

    async def pty_round_trip(self, workspace_id: str, n: int) -> dict[str, Any]:
        """One byte typed at `cat` on a raw terminal until it comes back, `n` times."""
        stream = _Stream(
            self.stub.Execute,
            pb.ExecuteRequest(workspace_id=workspace_id, script="stty raw -echo; echo ready; cat", tty=True),
        )
        seen = b""
        while b"ready" not in seen:
            seen += (await stream.call.read()).stdout_data
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            stream.send(pb.ExecuteRequest(input_data=b"k"))
            got = b""
            while b"k" not in got:
                got += (await stream.call.read()).stdout_data
            samples.append(time.perf_counter() - t0)
        stream.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_KILL))
        stream.call.cancel()
        return summary_ms(samples)

    async def stdin_throughput(self, workspace_id: str, mib: int, tty: bool) -> dict[str, Any]:
        """`mib` MiB in 1 MiB input_data messages into a session command writing a file."""
        session = await self.b.session(workspace_id)
        script = (
            f"stty raw -echo; echo ready; head -c {mib * MIB} > /workspace/in; wc -c < /workspace/in; rm -f /workspace/in"
            if tty
            else "cat > /workspace/in; wc -c < /workspace/in; rm -f /workspace/in"
        )
        stream = _Stream(
            self.stub.Execute,
            pb.ExecuteRequest(workspace_id=workspace_id, session_id=session, script=script, tty=tty),
        )
        out = b""
        if tty:
            while b"ready" not in out:
                out += (await stream.call.read()).stdout_data
        block = bytes(range(256)) * 4096
        t0 = time.perf_counter()
        for _ in range(mib):
            stream.send(pb.ExecuteRequest(input_data=block))
        stream.send(pb.ExecuteRequest(close_input=True))
        while True:
            response = await stream.call.read()
            out += response.stdout_data
            if response.end_reason:
                break
        elapsed = time.perf_counter() - t0
        stream.send(None)
        await self.b.stub.CloseSession(pb.CloseSessionRequest(session_id=session))
        assert str(mib * MIB).encode() in out, out[-200:]
        return {"mib": mib, "seconds": round(elapsed, 3), "mb_per_s": round(mib * MIB / elapsed / 1e6, 1)}

    async def attach_replay(self, workspace_id: str, n: int) -> dict[str, Any]:
        """A finished background execution with 1 MiB of output: AttachExecution from offset 0
        until its end (every retained byte replayed, then the final message)."""
        stream = _Stream(
            self.stub.Execute,
            pb.ExecuteRequest(
                workspace_id=workspace_id,
                script="dd if=/dev/zero bs=64k count=16 2>/dev/null",
                background=True,
            ),
        )
        first = await stream.call.read()
        execution_id = first.execution_id
        response = first
        while not response.end_reason:
            response = await stream.call.read()
        stream.send(None)
        samples, first_byte = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            attach = _Stream(self.stub.AttachExecution, pb.AttachExecutionRequest(execution_id=execution_id))
            got = 0
            while True:
                message = await attach.call.read()
                if got == 0:
                    first_byte.append(time.perf_counter() - t0)
                got += len(message.response.stdout_data)
                if message.response.end_reason:
                    break
            samples.append(time.perf_counter() - t0)
            attach.send(None)
            assert got == MIB, got
        return {"replay_1mib": summary_ms(samples), "first_message": summary_ms(first_byte)}

    async def port_forward(self, workspace_id: str, mib: int) -> dict[str, Any]:
        """`mib` MiB through ForwardPort into `nc -l` in a workspace without network, against the
        same bytes piped into `docker exec -i CONTAINER sh -c 'cat >/dev/null'`."""
        server = _Stream(
            self.stub.Execute,
            pb.ExecuteRequest(workspace_id=workspace_id, script="nc -l -p 9099 > /dev/null", background=True),
        )
        await server.call.read()
        block = bytes(range(256)) * 4096
        for _ in range(100):  # until it listens
            forward = _Stream(
                self.stub.ForwardPort, pb.ForwardPortRequest(workspace_id=workspace_id, port=9099)
            )
            try:
                await forward.call.read()
                break
            except Exception:
                await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        for _ in range(mib):
            forward.send(pb.ForwardPortRequest(data=block))
        forward.send(pb.ForwardPortRequest(close_write=True))
        while await forward.call.read() is not grpc.aio.EOF:
            pass
        ours = time.perf_counter() - t0
        forward.send(None)
        container = self.b.docker.containers.list(filters={"label": f"{LABEL_ID}={workspace_id}"})[0]

        def docker_exec() -> float:
            t = time.perf_counter()
            proc = subprocess.Popen(
                ["docker", "exec", "-i", container.id, "sh", "-c", "cat > /dev/null"], stdin=subprocess.PIPE
            )
            assert proc.stdin is not None
            for _ in range(mib):
                proc.stdin.write(block)
            proc.stdin.close()
            proc.wait()
            return time.perf_counter() - t

        theirs = await asyncio.to_thread(docker_exec)
        return {
            "mib": mib,
            "forward_port_mb_per_s": round(mib * MIB / ours / 1e6, 1),
            "docker_exec_pipe_mb_per_s": round(mib * MIB / theirs / 1e6, 1),
        }


async def bench_terminals(target: str, quick: bool, plain: bool = False) -> dict[str, Any]:
    b = ExecutorBench(target)
    t = TerminalBench(b)
    try:
        ws = await b.workspace()
        results: dict[str, Any] = {}
        if plain:
            results["plain_round_trip"] = (await b.round_trip(ws, n=300 if quick else 2000))["execute"]
            results["plain_throughput_1"] = await b.throughput(ws, 1, seconds=2 if quick else 5)
        results["pty_round_trip"] = await t.pty_round_trip(ws, n=100 if quick else 500)
        results["stdin"] = await t.stdin_throughput(ws, mib=50 if quick else 200, tty=False)
        results["pty_stdin"] = await t.stdin_throughput(ws, mib=20 if quick else 100, tty=True)
        results["attach_replay"] = await t.attach_replay(ws, n=5 if quick else 20)
        results["port_forward"] = await t.port_forward(ws, mib=50 if quick else 200)
        await b.delete(ws)
        return results
    finally:
        await b.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations and bytes")
    parser.add_argument("--plain", action="store_true", help="also the plain `true` round trip")
    args = parser.parse_args()
    executor_args = ["--backend", "docker", "--log-level", "warning"]
    with (
        tempfile.TemporaryDirectory(prefix="firebox-bench-terminals-") as tmp,
        service("firebox-executor", executor_args, config_dir=Path(tmp)) as (target, _proc),
    ):
        print(json.dumps(asyncio.run(bench_terminals(target, args.quick, args.plain)), indent=2))


if __name__ == "__main__":
    main()
