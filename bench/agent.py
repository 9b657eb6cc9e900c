"""Agent benchmarks: time to first token added by the agent, delta relay rate, Execute through
the agent.

Three processes, as in production: the fake OpenAI-compatible provider, `firebox-agent`, and
this one as the client. The figures:

- ttft: time to the first text delta through the agent (Generate and SendMessage) minus the time
  to the first delta straight from the provider, with the same SDK; p50 of interleaved samples.
- relay: TextDelta events, and the provider's deltas (tokens) they carry, received per second by
  the clients of 64 concurrent runs, with each process's CPU and the agent's cost per delta and
  per event: paced (tokens due 1 ms apart, on a schedule) with clients asking for batch_events
  and without, and burst (docs/agent.md, "Agent relay").
- execute: round trip of `true` through AgentService.Execute in a warm shell session (needs an
  executor target).

Call `await bench_agent(quick=..., executor_target=...)`, or run `python -m bench.agent`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import openai

from bench.services import free_port, wait_healthy, wait_quiet
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.fake_provider import FakeProvider, Pause, Raw, Reply, text_reply

REPO = Path(__file__).resolve().parents[1]


class _Process:
    """A started process: its address and pid (for its CPU time)."""

    def __init__(self, target: str, pid: int) -> None:
        self.target = target
        self.pid = pid


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) used so far by a process; this one when `pid` is None."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the command name (which may hold spaces): utime and stime are the 12th and
        # 13th of them, in clock ticks.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _provider_process(module_args: list[str]):
    """A provider started as `python -m MODULE_ARGS…` that prints its URL on its first line."""
    proc = subprocess.Popen([sys.executable, "-m", *module_args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield _Process(proc.stdout.readline().strip(), proc.pid)
    finally:
        proc.kill()
        proc.wait()


def _fake_provider(deltas: int, pause: float = 0.0, wire: str = "openai"):  # type: ignore[no-untyped-def]
    """The fake provider in a process of its own, answering every request with `deltas` deltas,
    `pause` seconds apart (each delta its own SSE event; with no pause they go out in one write)."""
    return _provider_process(
        ["tests.support.fake_provider", "--deltas", str(deltas), "--pause", str(pause), "--wire", wire]
    )


class _ScheduledProvider(FakeProvider):
    """The fake provider with pauses kept as a schedule: a Pause moves the time the next step is
    due, and a step already due goes out at once (each in a write of its own).

    The plain fake provider sleeps `pause` after every write, so a stream's rate is one delta per
    wake-up of its process; on a loaded machine a wake-up comes every few milliseconds, not every
    millisecond, and 64 paced streams offered 6,000-10,000 deltas/s with no agent in between
    (measured with raw sockets reading them). On this schedule they offer what the bench asks for
    (64 runs at 1 ms: 64,000 deltas/s) however late the process wakes."""

    def __init__(self, default: Reply, wire: str = "openai") -> None:
        super().__init__(default, wire)
        # The steps as (seconds after the previous step, bytes of its HTTP chunk), encoded once.
        self._frames: list[tuple[float, bytes]] = []
        wait = 0.0
        for step in default.steps:
            if isinstance(step, Pause):
                wait += step.seconds
                continue
            line = step.line if isinstance(step, Raw) else "data: " + json.dumps(step)
            data = f"{line}\n\n".encode()
            self._frames.append((wait, b"%x\r\n%s\r\n" % (len(data), data)))
            wait = 0.0
        self._frames.append((0.0, b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"))

    async def _respond(self, reply: Reply, writer: asyncio.StreamWriter, request: dict[str, Any]) -> bool:
        loop = asyncio.get_running_loop()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        due = loop.time()
        for wait, frame in self._frames:
            due += wait
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(frame)
            await writer.drain()
        return True


def _serve_scheduled_provider(deltas: int, pause: float) -> None:
    """Run the scheduled provider until killed, printing its base URL first (the bench's process)."""

    async def serve() -> None:
        fake = await _ScheduledProvider.start(text_reply(*(f"tok{n} " for n in range(deltas)), pause=pause))
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


def _scheduled_provider(deltas: int, pause: float):  # type: ignore[no-untyped-def]
    """The scheduled provider (see _ScheduledProvider) in a process of its own."""
    return _provider_process(["bench.agent", "--serve-provider", str(deltas), str(pause)])


@contextlib.contextmanager
def _agent(provider_url: str, executor: str, config_dir: Path, wire: str = "openai"):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBOX_", "OPENAI_"))}
    program = Path(sys.executable).parent / "firebox-agent"
    command = [str(program)] if program.exists() else [sys.executable, "-m", "agent_service"]
    proc = subprocess.Popen(
        [
            *command,
            "--listen",
            f"127.0.0.1:{port}",
            "--executor",
            executor,
            "--config-dir",
            str(config_dir),
            "--provider",
            wire,
            "--provider-base-url",
            provider_url,
            "--model",
            "fake-model",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"127.0.0.1:{port}")
        yield _Process(f"127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


async def _first(iterator: AsyncIterator[Any], is_token: Any) -> float:
    started = time.perf_counter()
    first = 0.0
    async for item in iterator:
        if not first and is_token(item):
            first = time.perf_counter() - started
    return first * 1000


async def measure_ttft(agent_target: str, provider_url: str, samples: int) -> dict[str, Any]:
    """Time to first token straight from the provider, through Generate, through SendMessage."""
    client = openai.AsyncOpenAI(base_url=provider_url, api_key="unused", max_retries=0)
    channel = grpc.aio.insecure_channel(agent_target)
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    session = (await stub.CreateSession(agent_pb2.CreateSessionRequest(title="bench"))).session
    direct: list[float] = []
    generate: list[float] = []
    send: list[float] = []
    messages = [{"role": "user", "content": "hi"}]
    request = agent_pb2.GenerateRequest(messages=[agent_pb2.Message(role=agent_pb2.ROLE_USER, content="hi")])

    async def provider_stream() -> AsyncIterator[Any]:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        async for chunk in stream:
            yield chunk

    def has_content(chunk: Any) -> bool:
        return bool(chunk.choices and chunk.choices[0].delta.content)

    for n in range(samples + 10):
        d = await _first(provider_stream(), has_content)
        g = await _first(stub.Generate(request), lambda r: r.HasField("text_delta") and r.text_delta.text)
        s = await _first(
            stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi")),
            lambda r: r.event.HasField("text_delta"),
        )
        if n >= 10:  # the first few warm connections and caches up
            direct.append(d)
            generate.append(g)
            send.append(s)
        if n % 20 == 19:
            # Keep the session's history short so every sample does the same work.
            await stub.DeleteSession(agent_pb2.DeleteSessionRequest(session_id=session.id))
            session = (await stub.CreateSession(agent_pb2.CreateSessionRequest(title="bench"))).session
    await client.close()
    await channel.close()
    provider_p50 = statistics.median(direct)
    return {
        "provider": _summary(direct),
        "generate": _summary(generate),
        "send_message": _summary(send),
        "added_p50_ms": round(statistics.median(generate) - provider_p50, 3),
        "added_send_message_p50_ms": round(statistics.median(send) - provider_p50, 3),
    }


async def measure_relay(
    agent_target: str,
    concurrency: int,
    rounds: int,
    processes: dict[str, int] | None = None,
    batched: bool = True,
) -> dict[str, Any]:
    """What the clients of `concurrency` concurrent runs receive per second, counted on the client:
    TextDelta events, the provider's deltas (tokens) they carry, and the stream messages they
    came in (`batched`: the clients ask for batch_events, several events per message).
    `processes` (name: pid) get their CPU use over the measurement reported, with this client's,
    to show which one was the bottleneck."""
    channels = [grpc.aio.insecure_channel(agent_target) for _ in range(4)]
    stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
    sessions = [
        (await stubs[0].CreateSession(agent_pb2.CreateSessionRequest(title=f"relay{n}"))).session.id
        for n in range(concurrency)
    ]
    deltas = 0
    events = 0
    messages = 0

    async def one(n: int) -> None:
        nonlocal deltas, events, messages
        stub = stubs[n % len(stubs)]
        for _ in range(rounds):
            call = stub.SendMessage(
                agent_pb2.SendMessageRequest(session_id=sessions[n], content="go", batch_events=batched)
            )
            async for response in call:
                messages += 1
                for event in response.events if batched else (response.event,):
                    if event.HasField("text_delta"):
                        events += 1
                        deltas += event.text_delta.text.count("tok")

    watched = {"client": None, **(processes or {})}
    cpu_before = {name: _cpu_seconds(pid) for name, pid in watched.items()}
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = {name: round((_cpu_seconds(pid) - cpu_before[name]) / elapsed, 2) for name, pid in watched.items()}
    for session_id in sessions:
        await stubs[0].DeleteSession(agent_pb2.DeleteSessionRequest(session_id=session_id))
    for channel in channels:
        await channel.close()
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "batch_events": batched,
        "deltas": deltas,
        "events": events,
        "messages": messages,
        "seconds": round(elapsed, 3),
        "deltas_per_s": round(deltas / elapsed),
        "events_per_s": round(events / elapsed),
        "deltas_per_event": round(deltas / max(events, 1), 2),
        "events_per_message": round(events / max(messages, 1), 2),
        # Cores each process kept busy (1.0 = one core all the time); the machine has os.cpu_count().
        "cpu_cores": cpu,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    agent_cpu = cpu.get("agent", 0.0) * elapsed
    if agent_cpu > 0:
        # The agent's cost per delta and per event, and so what one core of it relays: on a shared
        # machine the rates above depend on how much CPU the agent got; these do much less.
        result["agent_cpu_us_per_delta"] = round(agent_cpu / max(deltas, 1) * 1e6, 1)
        result["agent_cpu_us_per_event"] = round(agent_cpu / max(events, 1) * 1e6, 1)
        result["deltas_per_agent_core_s"] = round(deltas / agent_cpu)
        result["events_per_agent_core_s"] = round(events / agent_cpu)
    return result


async def measure_execute(agent_target: str, executor_target: str, samples: int) -> dict[str, Any]:
    """Round trip of `true` through AgentService.Execute in a warm shell session."""
    executor = executor_pb2_grpc.ExecutorServiceStub(grpc.aio.insecure_channel(executor_target))
    workspace = (await executor.CreateWorkspace(executor_pb2.CreateWorkspaceRequest())).workspace.id
    shell = (
        await executor.CreateSession(executor_pb2.CreateSessionRequest(workspace_id=workspace))
    ).session.id
    stub = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(agent_target))
    request = executor_pb2.ExecuteRequest(workspace_id=workspace, session_id=shell, script="true")
    times: list[float] = []
    try:
        for n in range(samples + 20):
            if n == 20:  # warmed up; and the workspace may have come from the warm pool, whose
                await asyncio.to_thread(wait_quiet)  # refill would run during the first samples
            started = time.perf_counter()
            call = stub.Execute(iter([request]))
            async for _ in call:
                pass
            if n >= 20:
                times.append((time.perf_counter() - started) * 1000)
    finally:
        await executor.DeleteWorkspace(executor_pb2.DeleteWorkspaceRequest(workspace_id=workspace))
    return _summary(times)


async def bench_agent(
    quick: bool = False, executor_target: str | None = None, parts: tuple[str, ...] = ("ttft", "relay")
) -> dict[str, Any]:
    """Every agent figure (or only those in `parts`); starts its own fake provider and agent
    processes."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="firebox-bench-agent-") as tmp:
        executor = executor_target or "127.0.0.1:9"
        if "ttft" in parts:
            with (
                _fake_provider(deltas=3) as provider,
                _agent(provider.target, executor, Path(tmp) / "a") as agent,
            ):
                results["ttft"] = await measure_ttft(
                    agent.target, provider.target, samples=60 if quick else 300
                )
                if executor_target:
                    results["execute"] = await measure_execute(
                        agent.target, executor_target, 200 if quick else 1000
                    )
        if "relay" not in parts:
            return results
        # Paced: each run's tokens come 1 ms apart, each in a network write of its own, as from a
        # fast model (64 runs offer up to 64,000 tokens/s). Burst: each answer's 1000 tokens in
        # one write, so the agent reads them together and relays them in few events.
        results["relay"] = {}
        loads = (("64", 0.001, True), ("64_one_event_per_message", 0.001, False), ("64_burst", 0.0, True))
        for name, pause, batched in loads:
            with (
                _scheduled_provider(1000, pause) if pause else _fake_provider(1000) as provider,
                _agent(provider.target, executor, Path(tmp) / name) as agent,
            ):
                results["relay"][name] = await measure_relay(
                    agent.target,
                    concurrency=64,
                    rounds=1 if quick else 3,
                    processes={"provider": provider.pid, "agent": agent.pid},
                    batched=batched,
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--executor", help="executor HOST:PORT for the Execute round trip")
    parser.add_argument(
        "--only", choices=("ttft", "relay"), help="measure only time to first token or only the relay"
    )
    parser.add_argument("--serve-provider", nargs=2, metavar=("DELTAS", "PAUSE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_provider:
        _serve_scheduled_provider(int(args.serve_provider[0]), float(args.serve_provider[1]))
        return
    parts = (args.only,) if args.only else ("ttft", "relay")
    print(json.dumps(asyncio.run(bench_agent(args.quick, args.executor, parts)), indent=2))


if __name__ == "__main__":
    main()
