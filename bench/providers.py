"""Provider paths: the time to first token the agent adds, the relay cost per token, and how soon
a stalled stream ends, for each wire format (`openai` chat completions, `anthropic` Messages).

- ttft: per wire, an agent process with `--provider WIRE` in front of the fake provider (a process
  of its own, 3-delta answers). Time to the first text delta through Generate, minus the time to
  the first text delta read straight from the fake with a plain HTTP client; p50 of interleaved
  samples after a warm-up.
- relay: per wire, the provider module alone in this process: the CPU (user + system) this process
  spends per token consuming burst answers of N tokens through `ModelProvider.stream`, the fake in
  its own process. For the OpenAI wire also the SDK's own stream (`chat.completions.create(stream=
  True)`, typed chunks) over the same answers: the figure the hand-written SSE reader in
  agent_service/providers/openai_chat.py is kept for.
- stall: per wire, a real agent run against a server that streams two tokens then only keep-alive
  pings (llama.cpp's `: ping - <time>` comments every 0.5 s; Anthropic `ping` events), idle
  timeout 2 s, no retries: the seconds from the last token to `run_failed`, which must be at most
  idle timeout + 1 s.

Run `python -m bench.providers [--quick]` (it prints one JSON object); `make bench` runs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx2
import openai

from agent_service.providers import build_provider
from agent_service.providers.base import ProviderSettings, TextPiece
from bench.agent import _agent, _fake_provider, _first, _summary
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.support.agent_server import agent_stub, new_session, running_agent
from tests.support.fake_provider import FakeProvider, stalled_reply

WIRES = ("openai", "anthropic")
# Nothing listens here; Generate and a text-only run never call the executor.
NO_EXECUTOR = "127.0.0.1:9"
STALL_IDLE_SECONDS = 2.0


async def _direct_first_token(client: httpx2.AsyncClient, url: str, wire: str) -> float:
    """Milliseconds to the first text delta read straight from the fake (SSE lines, no SDK)."""
    path, marker = (
        ("/v1/messages", b"text_delta") if wire == "anthropic" else ("/chat/completions", b'"content": "tok')
    )
    body = {
        "model": "fake-model",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    started = time.perf_counter()
    first = 0.0
    async with client.stream("POST", url.rstrip("/") + path, json=body) as response:
        async for line in response.aiter_lines():
            if not first and marker in line.encode():
                first = time.perf_counter() - started
    return first * 1000


async def measure_ttft(wire: str, samples: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="firebox-bench-providers-") as tmp,
        _fake_provider(3, wire=wire) as provider,
        _agent(provider.target, NO_EXECUTOR, Path(tmp), wire=wire) as agent,
    ):
        channel = grpc.aio.insecure_channel(agent.target)
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        request = agent_pb2.GenerateRequest(
            messages=[agent_pb2.Message(role=agent_pb2.ROLE_USER, content="hi")]
        )
        direct: list[float] = []
        generate: list[float] = []
        async with httpx2.AsyncClient(timeout=30) as client:
            for n in range(samples + 10):
                d = await _direct_first_token(client, provider.target, wire)
                g = await _first(
                    stub.Generate(request), lambda r: r.HasField("text_delta") and r.text_delta.text
                )
                if n >= 10:
                    direct.append(d)
                    generate.append(g)
        await channel.close()
    return {
        "provider": _summary(direct),
        "generate": _summary(generate),
        "added_p50_ms": round(statistics.median(generate) - statistics.median(direct), 3),
    }


async def _consume_module(wire: str, url: str, rounds: int) -> int:
    provider = build_provider(
        ProviderSettings(
            wire_format=wire, base_url=url, default_model="fake-model", max_output_tokens=1_000_000
        )
    )
    tokens = 0
    try:
        for _ in range(rounds):
            async for event in provider.stream([{"role": "user", "content": "hi"}], "fake-model"):
                if isinstance(event, TextPiece):
                    tokens += 1
    finally:
        await provider.close()
    return tokens


async def _consume_openai_sdk(url: str, rounds: int) -> int:
    client = openai.AsyncOpenAI(
        base_url=url, api_key="unused", max_retries=0, http_client=openai.DefaultAioHttpClient()
    )
    tokens = 0
    try:
        for _ in range(rounds):
            stream = await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    tokens += 1
    finally:
        await client.close()
    return tokens


async def _cpu_per_token(consume: Any) -> float:
    """Microseconds of this process's CPU per token, median of three passes after a warm-up."""
    await consume(1)
    figures = []
    for _ in range(3):
        started = time.process_time()
        tokens = await consume(2)
        figures.append((time.process_time() - started) / tokens * 1e6)
    return round(statistics.median(figures), 2)


async def measure_relay(wire: str, deltas: int) -> dict[str, Any]:
    with _fake_provider(deltas, wire=wire) as provider:
        figures = {
            "module_us_per_token": await _cpu_per_token(lambda r: _consume_module(wire, provider.target, r))
        }
        if wire == "openai":
            figures["sdk_stream_us_per_token"] = await _cpu_per_token(
                lambda r: _consume_openai_sdk(provider.target, r)
            )
    return figures


async def measure_stall(wire: str) -> dict[str, Any]:
    fake = await FakeProvider.start(stalled_reply("tok ", "tok ", interval=0.5), wire=wire)
    try:
        with tempfile.TemporaryDirectory(prefix="firebox-bench-stall-") as tmp:
            async with running_agent(
                Path(tmp), fake=fake, idle_timeout=STALL_IDLE_SECONDS, provider_retries=0, log_level="warning"
            ) as agent:
                stub = agent_stub(agent)
                session = await new_session(stub)
                last_token = 0.0
                ended = 0.0
                message = ""
                async for response in stub.SendMessage(
                    agent_pb2.SendMessageRequest(session_id=session.id, content="hi")
                ):
                    if response.event.HasField("text_delta"):
                        last_token = time.monotonic()
                    if response.event.HasField("run_failed"):
                        ended = time.monotonic()
                        message = response.event.run_failed.message
    finally:
        await fake.stop()
    seconds = ended - last_token
    return {
        "idle_timeout_s": STALL_IDLE_SECONDS,
        "ended_after_last_token_s": round(seconds, 3),
        "within_idle_plus_1s": seconds <= STALL_IDLE_SECONDS + 1.0,
        "reason": message,
    }


async def bench_providers(quick: bool) -> dict[str, Any]:
    samples, deltas = (20, 2000) if quick else (60, 10000)
    results: dict[str, Any] = {}
    for wire in WIRES:
        results[wire] = {
            "ttft": await measure_ttft(wire, samples),
            "relay": await measure_relay(wire, deltas),
            "stall": await measure_stall(wire),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter answers")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench_providers(args.quick)), indent=2))


if __name__ == "__main__":
    main()
