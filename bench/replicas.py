"""Agent scale-out figures: SQLite vs PostgreSQL, 1 vs 3 replicas, takeover and follower latency.

Usage: python -m bench.replicas [--quick] [--kills N] [--lease SECONDS]

Starts a throwaway PostgreSQL 15 cluster (tests/support/postgres.py), the fake model provider in
a process of its own, and agent processes; no executor is needed (runs are text only).

- runs/s and events/s: concurrent clients send messages round-robin over the replicas, each
  run one model call streaming DELTAS deltas; counted on the clients (batch_events on).
- follower latency: a run on replica A, a StreamRun follower on replica B; each event's arrival
  on B minus the time A stamped on it (same machine, same clock); and the same for a second
  follower on A itself.
- takeover: a run held mid-stream on one replica, a follower on another; the replica is killed
  with SIGKILL and the time until the follower gets the taker's RunResumed event (the run goes
  on there) and the run's end are measured; the killed replica is started again before the next
  kill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from bench.agent import _scheduled_provider, _summary
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.support.agent_server import UNREACHABLE_EXECUTOR
from tests.support.fake_provider import FakeProvider, Hold, Reply, chunk
from tests.support.postgres import PostgresServer
from tests.support.service_process import AgentProcess

DELTAS = 20


@contextlib.contextmanager
def _replicas(
    root: Path, count: int, provider: str, database_url: str, lease: float
) -> Iterator[list[AgentProcess]]:
    agents = []
    try:
        for n in range(count):
            args = ["--log-level", "warning", "--run-lease", str(lease)]
            if database_url:
                args += ["--database-url", database_url]
            agent = AgentProcess(
                root / f"agent{n}", executor=UNREACHABLE_EXECUTOR, provider=provider, args=args
            )
            agents.append(agent)
            agent.start()
        yield agents
    finally:
        for agent in agents:
            agent.__exit__()


async def measure_throughput(targets: list[str], clients: int, runs_per_client: int) -> dict[str, Any]:
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
    sessions = [
        (await stubs[n % len(stubs)].CreateSession(agent_pb2.CreateSessionRequest(title=f"b{n}"))).session.id
        for n in range(clients)
    ]
    events = 0
    runs = 0

    async def client(n: int) -> None:
        nonlocal events, runs
        for r in range(runs_per_client):
            stub = stubs[(n + r) % len(stubs)]
            call = stub.SendMessage(
                agent_pb2.SendMessageRequest(session_id=sessions[n], content="go", batch_events=True)
            )
            async for response in call:
                events += len(response.events)
            runs += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return {
        "replicas": len(targets),
        "clients": clients,
        "runs": runs,
        "seconds": round(elapsed, 2),
        "runs_per_s": round(runs / elapsed, 1),
        "events_per_s": round(events / elapsed),
    }


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def _until_resumed_and_ended(
    stub: Any, run_id: str, resumed: asyncio.Future[float], ended: asyncio.Future[float]
) -> None:
    async for response in stub.StreamRun(agent_pb2.StreamRunRequest(run_id=run_id)):
        if response.event.HasField("run_resumed"):
            resumed.set_result(time.perf_counter())
        if response.event.WhichOneof("event") in ("run_completed", "run_failed", "run_cancelled"):
            ended.set_result(time.perf_counter())
            return


async def measure_follower_latency(a: str, b: str, runs: int) -> dict[str, Any]:
    """A's events as seen by a follower on B: arrival minus A's stamp, per event."""
    stub_a = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(a))
    stub_b = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(b))
    latencies: list[float] = []
    for _ in range(runs):
        session = (await stub_a.CreateSession(agent_pb2.CreateSessionRequest(title="lat"))).session.id
        call = stub_a.SendMessage(agent_pb2.SendMessageRequest(session_id=session, content="go"))
        first = None
        async for response in call:
            first = response.event
            break
        assert first is not None

        draining = asyncio.create_task(_drain(call))
        joined = time.time_ns()
        async for response in stub_b.StreamRun(agent_pb2.StreamRunRequest(run_id=first.run_id)):
            event = response.event
            arrived = time.time_ns()
            if event.time.ToNanoseconds() >= joined:  # live, not the replay of what came before
                latencies.append((arrived - event.time.ToNanoseconds()) / 1e6)
        await draining
    ordered = sorted(latencies)
    return {
        "events": len(latencies),
        **_summary(latencies),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    }


async def measure_takeover(
    agents: list[AgentProcess], fake: FakeProvider, kills: int, lease: float
) -> dict[str, Any]:
    """Kill the replica driving a held run; time until a follower elsewhere sees the run go on
    (RunResumed) and end (the model call made again: the paced reply, about 0.4 s)."""
    times: list[float] = []
    ends: list[float] = []
    for k in range(kills):
        victim, watcher = agents[k % len(agents)], agents[(k + 1) % len(agents)]
        stub_v = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(victim.target))
        stub_w = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(watcher.target))
        session = (await stub_w.CreateSession(agent_pb2.CreateSessionRequest(title="kill"))).session.id
        fake.script(Reply(steps=[chunk({"content": "partial"}), Hold()]))
        call = stub_v.SendMessage(agent_pb2.SendMessageRequest(session_id=session, content="go"))
        first = None
        async for response in call:
            first = response.event
            break
        assert first is not None
        resumed = asyncio.get_running_loop().create_future()
        ended = asyncio.get_running_loop().create_future()

        follower = asyncio.create_task(_until_resumed_and_ended(stub_w, first.run_id, resumed, ended))
        await asyncio.sleep(0.3)
        killed = time.perf_counter()
        await asyncio.to_thread(victim.kill)
        call.cancel()
        async with asyncio.timeout(lease * 4 + 10):
            times.append((await resumed - killed) * 1000)
            ends.append((await ended - killed) * 1000)
        await follower
        fake.release()  # the held stream of the dead replica ends
        fake.reset()  # and the next one holds again
        await asyncio.to_thread(victim.start)
    ordered = sorted(times)
    return {
        "kills": kills,
        "lease_s": lease,
        "p50_ms": round(ordered[len(ordered) // 2], 1),
        "max_ms": round(ordered[-1], 1),
        "all_ms": [round(t, 1) for t in times],
        "to_end_p50_ms": round(sorted(ends)[len(ends) // 2], 1),
    }


async def bench_replicas(quick: bool, kills: int, lease: float) -> dict[str, Any]:
    clients = 8 if quick else 32
    per_client = 5 if quick else 20
    results: dict[str, Any] = {"deltas_per_run": DELTAS}
    root = Path(tempfile.mkdtemp(prefix="firebox-bench-replicas-"))
    postgres = PostgresServer.start()
    try:
        with _scheduled_provider(DELTAS, 0.0) as provider:
            for name, count, url in (
                ("sqlite_1", 1, ""),
                ("postgresql_1", 1, postgres.create_database()),
                ("postgresql_3", 3, postgres.create_database()),
            ):
                with _replicas(root / name, count, provider.target, url, lease) as agents:
                    results[name] = await measure_throughput([a.target for a in agents], clients, per_client)
        paced = await FakeProvider.start()
        try:
            # Paced: 40 deltas 10 ms apart, so the follower waits on live events, not a backlog.
            from tests.support.fake_provider import text_reply

            paced.default = text_reply(*(f"t{n} " for n in range(40)), pause=0.01)
            with _replicas(root / "latency", 2, paced.base_url, postgres.create_database(), lease) as agents:
                results["follower_latency"] = await measure_follower_latency(
                    agents[0].target, agents[1].target, 3 if quick else 10
                )
                # On the replica running the run: events go out once stored (a takeover starts
                # from what was stored, so nobody saw more), at most one 20 ms batch later.
                results["owner_follower_latency"] = await measure_follower_latency(
                    agents[0].target, agents[0].target, 3 if quick else 10
                )
                results["takeover"] = await measure_takeover(agents, paced, kills, lease)
        finally:
            paced.release()
            await paced.stop()
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kills", type=int, default=10, help="kill -9 takeovers to time (default 10)")
    parser.add_argument("--lease", type=float, default=5.0, help="--run-lease of the agents (default 5)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench_replicas(args.quick, args.kills, args.lease)), indent=2))


if __name__ == "__main__":
    main()
