"""/metrics of both services (--metrics-listen), scraped over HTTP while they work."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.agent_server import agent_stub, collect, new_session, running_agent
from tests.support.executor_server import free_port, running_executor
from tests.support.fake_provider import FakeProvider, text_reply


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_agent_metrics_count_rpcs_model_calls_tokens_and_runs(tmp_path: Path):
    fake = await FakeProvider.start()
    port = free_port()
    try:
        async with running_agent(
            tmp_path / "a", provider=fake.base_url, metrics_listen=f"127.0.0.1:{port}"
        ) as agent:
            stub = agent_stub(agent)
            before = await asyncio.to_thread(_scrape, port)
            session = await new_session(stub)
            fake.script(text_reply("hi ", "there"))  # usage: 11 prompt, 7 completion tokens
            await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="q")))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetSession(agent_pb2.GetSessionRequest(session_id="ses-none"))
            after = await asyncio.to_thread(_scrape, port)
    finally:
        await fake.stop()

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("firebox_agent_rpc_requests_total", method="SendMessage", code="OK") == 1
    assert grew("firebox_agent_rpc_requests_total", method="GetSession", code="NOT_FOUND") == 1
    assert grew("firebox_agent_rpc_duration_seconds_count", method="CreateSession", code="OK") == 1
    assert grew("firebox_agent_model_call_duration_seconds_count", model="fake-model", outcome="ok") == 1
    assert grew("firebox_agent_model_tokens_total", model="fake-model", kind="input") == 11
    assert grew("firebox_agent_model_tokens_total", model="fake-model", kind="output") == 7
    assert ("firebox_agent_active_runs", (("status", "running"),)) in after
    assert _value(after, "firebox_agent_active_runs", status="running") == 0  # the run ended
    assert ("firebox_agent_training_log_queue_depth", ()) in after


@pytest.mark.bwrap
async def test_executor_metrics_count_executions_by_end_reason_and_workspaces_by_state(tmp_path: Path):
    port = free_port()
    async with running_executor(
        tmp_path / "ex", backend="bwrap", metrics_listen=f"127.0.0.1:{port}"
    ) as target:
        stub = executor_pb2_grpc.ExecutorServiceStub(grpc.aio.insecure_channel(target))
        before = await asyncio.to_thread(_scrape, port)
        workspace = (await stub.CreateWorkspace(executor_pb2.CreateWorkspaceRequest())).workspace
        for script in ("true", "exit 3"):
            call = stub.Execute()
            await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace.id, script=script))
            await call.done_writing()
            _ = [r async for r in call]
        after = await asyncio.to_thread(_scrape, port)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("firebox_executor_executions_total", end_reason="exited") == 2
    assert grew("firebox_executor_rpc_requests_total", method="Execute", code="OK") == 2
    assert grew("firebox_executor_rpc_duration_seconds_count", method="CreateWorkspace", code="OK") == 1
    assert _value(after, "firebox_executor_workspaces", state="running") >= 1
    assert ("firebox_executor_warm_pool_ready", ()) in after
    assert ("firebox_executor_training_log_queue_depth", ()) in after


def test_metrics_listen_comes_from_the_flag_or_the_variable_and_is_off_by_default():
    from agent_service.config import load as load_agent
    from executor_service.config import load as load_executor

    assert load_agent([], {}).metrics_listen == ""
    assert load_agent([], {"FIREBOX_METRICS_LISTEN": "0.0.0.0:9464"}).metrics_listen == "0.0.0.0:9464"
    assert load_executor(["--metrics-listen", "127.0.0.1:9465"], {}).metrics_listen == "127.0.0.1:9465"
    assert load_executor([], {}).metrics_listen == ""
    with pytest.raises(SystemExit):
        load_agent(["--metrics-listen", "nohost"], {})
