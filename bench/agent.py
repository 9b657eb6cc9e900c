"""Agent benchmarks: time to first token added by the agent, delta relay rate, Execute through
the agent.

Three processes, as in production: the fake OpenAI-compatible provider, `firebox-agent`, and
this one as the client. The figures:

- ttft: time to the first text delta through the agent (Generate and SendMessage) minus the time
  to the first delta straight from the provider, with the same SDK; p50 of interleaved samples.
- relay: text-delta events received per second by clients of N concurrent runs.
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

from bench.services import free_port, wait_healthy
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _fake_provider(deltas: int, pause: float = 0.0):
    """The fake provider in a process of its own, answering every request with `deltas` deltas,
    `pause` seconds apart."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--deltas", str(deltas), "--pause", str(pause)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _agent(provider_url: str, executor: str, config_dir: Path):
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
        yield f"127.0.0.1:{port}"
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


async def measure_relay(agent_target: str, concurrency: int, rounds: int) -> dict[str, Any]:
    """Provider deltas (tokens) and text-delta events per second received by the clients of
    `concurrency` concurrent runs. Tokens that reach the agent together share an event."""
    channels = [grpc.aio.insecure_channel(agent_target) for _ in range(4)]
    stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
    sessions = [
        (await stubs[0].CreateSession(agent_pb2.CreateSessionRequest(title=f"relay{n}"))).session.id
        for n in range(concurrency)
    ]
    deltas = 0
    events = 0

    async def one(n: int) -> None:
        nonlocal deltas, events
        stub = stubs[n % len(stubs)]
        for _ in range(rounds):
            call = stub.SendMessage(agent_pb2.SendMessageRequest(session_id=sessions[n], content="go"))
            async for response in call:
                if response.event.HasField("text_delta"):
                    events += 1
                    deltas += response.event.text_delta.text.count("tok")

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    for session_id in sessions:
        await stubs[0].DeleteSession(agent_pb2.DeleteSessionRequest(session_id=session_id))
    for channel in channels:
        await channel.close()
    return {
        "concurrency": concurrency,
        "deltas": deltas,
        "events": events,
        "seconds": round(elapsed, 3),
        "deltas_per_s": round(deltas / elapsed),
        "events_per_s": round(events / elapsed),
    }


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
            started = time.perf_counter()
            call = stub.Execute(iter([request]))
            async for _ in call:
                pass
            if n >= 20:
                times.append((time.perf_counter() - started) * 1000)
    finally:
        await executor.DeleteWorkspace(executor_pb2.DeleteWorkspaceRequest(workspace_id=workspace))
    return _summary(times)


async def bench_agent(quick: bool = False, executor_target: str | None = None) -> dict[str, Any]:
    """Every agent figure; starts its own fake provider and agent processes."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="firebox-bench-agent-") as tmp:
        executor = executor_target or "127.0.0.1:9"
        with _fake_provider(deltas=3) as url, _agent(url, executor, Path(tmp) / "a") as target:
            results["ttft"] = await measure_ttft(target, url, samples=60 if quick else 300)
            if executor_target:
                results["execute"] = await measure_execute(target, executor_target, 200 if quick else 1000)
        # Paced: each run's tokens come 1 ms apart, as from a fast model (64 runs offer up to
        # 64,000 tokens/s). Burst: the provider writes as fast as it can.
        results["relay"] = {}
        for name, pause in (("64", 0.001), ("64_burst", 0.0)):
            with (
                _fake_provider(deltas=1000, pause=pause) as url,
                _agent(url, executor, Path(tmp) / name) as target,
            ):
                results["relay"][name] = await measure_relay(target, concurrency=64, rounds=1 if quick else 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--executor", help="executor HOST:PORT for the Execute round trip")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench_agent(args.quick, args.executor)), indent=2))


if __name__ == "__main__":
    main()
