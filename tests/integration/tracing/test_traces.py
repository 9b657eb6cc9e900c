"""Traces: a SendMessage trace holds the model calls and the tool call, and the executor's
Execute joins it through gRPC metadata (both services real, spans in the in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from firebox.agent.v1 import agent_pb2
from firebox.common import tracing
from firebox.common.logging import add_trace_ids
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent
from tests.support.executor_server import running_executor
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply

pytestmark = pytest.mark.bwrap


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.use_exporter(exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


async def test_a_send_message_trace_holds_model_calls_tool_calls_and_the_executors_execute(
    tmp_path: Path, spans: InMemorySpanExporter
):
    fake = await FakeProvider.start()
    try:
        async with (
            running_executor(tmp_path / "ex", backend="bwrap") as executor,
            running_agent(tmp_path / "agent", provider=fake.base_url, executor=executor) as agent,
        ):
            stub = agent_stub(agent)
            session = await new_session(stub)
            fake.script(shell_reply("echo traced", call_id="call_1"), text_reply("done"))
            events = await collect(
                stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="go"))
            )
            assert kinds(events)[-1] == "run_completed"
    finally:
        await fake.stop()

    finished = spans.get_finished_spans()
    send = next(s for s in finished if s.name == "firebox.agent.v1.AgentService/SendMessage")
    trace_id = send.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    def ancestors(span) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    model_calls = [s for s in in_trace if s.name == "model_call"]
    assert len(model_calls) == 2  # the tool call, then the answer
    assert all("firebox.agent.v1.AgentService/SendMessage" in ancestors(s) for s in model_calls)
    assert model_calls[0].attributes["model"] == "fake-model"
    assert model_calls[0].attributes["output_tokens"] == 7
    (tool,) = [s for s in in_trace if s.name == "tool_call"]
    assert tool.attributes["tool_call_id"] == "call_1" and tool.attributes["tool"] == "shell"
    # The executor's server span: same trace, under the tool call, across a real gRPC hop.
    executes = [s for s in in_trace if s.name == "firebox.executor.v1.ExecutorService/Execute"]
    assert executes and all("tool_call" in ancestors(s) for s in executes)
    assert executes[0].parent.is_remote


def test_log_lines_inside_a_span_carry_its_trace_id(spans: InMemorySpanExporter):
    with tracing.span("work") as current:
        line = add_trace_ids(None, "info", {"event": "x"})
    assert line["trace_id"] == format(current.get_span_context().trace_id, "032x")
    assert add_trace_ids(None, "info", {"event": "y"}) == {"event": "y"}  # outside a span


def test_tracing_is_off_without_an_otlp_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert not tracing.configure("agent")
    assert not tracing.enabled()
    assert tracing.outgoing((("a", "b"),)) == (("a", "b"),)


def test_with_an_otlp_endpoint_spans_are_exported_over_http(monkeypatch):
    import http.server
    import threading

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert tracing.configure("agent")
        with tracing.span("exported-span"):
            pass
        tracing.shutdown()  # flushes the batch
    finally:
        server.shutdown()
    assert [path for path, _ in received] == ["/v1/traces"]
    assert b"exported-span" in received[0][1] and b"firebox-agent" in received[0][1]
