// The agent client against a real agent (and executor) with a fake model provider that answers
// every message with REPLY_DELTAS slow text deltas; token required.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, createAgentClient, FireboxError, isTerminal, RunStatus } from "../dist/index.js";
import { AGENT, REPLY_DELTAS, REPLY_TEXT, TOKEN, startProxy, textOf } from "./helpers.js";

const agent = createAgentClient({ address: AGENT, token: TOKEN, timeoutMs: 60_000 });

function assertConsecutive(events, from = 1) {
  assert.deepEqual(
    events.map((e) => Number(e.index)),
    Array.from({ length: events.length }, (_, n) => n + from),
  );
}

describe("runs", () => {
  let session;
  before(async () => {
    assert.ok(REPLY_DELTAS >= 10, "the harness must script a reply of at least 10 deltas");
    session = await agent.sessions.create({ title: "ts-client runs" });
  });
  after(async () => {
    await agent.sessions.delete(session.id);
  });

  test("a streamed run resumes after a dropped connection with no gap and no repeat", async () => {
    const proxy = await startProxy(AGENT);
    try {
      const client = createAgentClient({ address: proxy.address, token: TOKEN });
      const reconnects = [];
      const run = client.sendMessage(
        { sessionId: session.id, content: "tell me something" },
        { onReconnect: (info) => reconnects.push(info) },
      );
      const events = [];
      let deltas = 0;
      for await (const event of run) {
        events.push(event);
        if (event.event.case === "textDelta" && ++deltas === 3) proxy.drop();
      }
      assert.equal(run.reconnects, reconnects.length);
      assert.ok(run.reconnects >= 1, "the connection was cut mid-run, so the stream must have reconnected");
      assert.ok(reconnects[0].afterIndex >= 3n);
      assert.ok(proxy.connections >= 2);
      assertConsecutive(events);
      assert.equal(textOf(events), REPLY_TEXT);
      assert.equal(events.at(-1).event.case, "runCompleted");
      assert.equal(events.filter(isTerminal).length, 1);
      // What was delivered is exactly the run's event list as the server stores it.
      const replay = await agent.streamRun({ runId: run.runId }).collect();
      assert.deepEqual(
        events.map((e) => [e.index, e.event.case]),
        replay.map((e) => [e.index, e.event.case]),
      );
    } finally {
      await proxy.close();
    }
  });

  test("streamRun replays after an index, then ends with the run", async () => {
    const first = await agent.sendMessage({ sessionId: session.id, content: "again" }).collect();
    const runId = first[0].runId;
    const tail = await agent.streamRun({ runId, afterIndex: 5 }).collect();
    assertConsecutive(tail, 6);
    assert.deepEqual(
      tail.map((e) => e.index),
      first.slice(5).map((e) => e.index),
    );
    assert.equal((await agent.getRun(runId)).status, RunStatus.COMPLETED);
  });

  test("cancelRun stops a run mid-stream; its stream ends with runCancelled", async () => {
    const run = agent.sendMessage({ sessionId: session.id, content: "a long answer please" });
    const events = [];
    for await (const event of run) {
      events.push(event);
      if (event.event.case === "textDelta" && events.filter((e) => e.event.case === "textDelta").length === 1) {
        const cancelled = await run.cancel();
        assert.equal(cancelled.id, run.runId);
      }
    }
    assert.equal(events.at(-1).event.case, "runCancelled");
    assert.ok(textOf(events).length < REPLY_TEXT.length);
    assert.equal((await agent.getRun(run.runId)).status, RunStatus.CANCELLED);
    // Cancelling a finished run is not an error.
    assert.equal((await agent.cancelRun(run.runId)).status, RunStatus.CANCELLED);
  });

  test("an AbortSignal stops listening (CANCELLED) while the run goes on on the server", async () => {
    const controller = new AbortController();
    const run = agent.sendMessage({ sessionId: session.id, content: "keep going" }, { signal: controller.signal });
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const event of run) {
          seen.push(event);
          if (event.event.case === "textDelta") controller.abort();
        }
      })(),
      (e) => e instanceof FireboxError && e.code === Code.Canceled,
    );
    const rest = await agent.streamRun({ runId: run.runId, afterIndex: run.lastIndex }).collect();
    assert.equal(rest.at(-1).event.case, "runCompleted");
    assertConsecutive([...seen, ...rest]);
  });

  test("a deadline bounds the whole stream", async () => {
    const run = agent.sendMessage({ sessionId: session.id, content: "slowly" }, { timeoutMs: 200 });
    await assert.rejects(run.collect(), (e) => e instanceof FireboxError && e.code === Code.DeadlineExceeded);
    // The run goes on without a listener; let it end before the next test uses the session.
    assert.ok(run.runId, "runStarted arrives well within the deadline");
    const rest = await agent.streamRun({ runId: run.runId, afterIndex: run.lastIndex }).collect();
    assert.equal(rest.at(-1).event.case, "runCompleted");
  });
});

describe("sessions and workspaces", () => {
  test("sessions are created, listed, read with messages and deleted", async () => {
    const session = await agent.sessions.create({ title: "ts-client sessions", labels: { editor: "test" } });
    await agent.sendMessage({ sessionId: session.id, content: "hello" }).collect();
    const { session: read, messages } = await agent.sessions.get(session.id, { includeMessages: true });
    assert.equal(read.title, "ts-client sessions");
    assert.deepEqual(
      messages.map((m) => m.content),
      ["hello", REPLY_TEXT],
    );
    const cleared = await agent.sessions.clear(session.id);
    assert.equal(cleared.clearedMessageCount, 2n);
    assert.equal(cleared.session.messageCount, 0n);
    assert.equal((await agent.sessions.get(session.id, { includeMessages: true })).messages.length, 0);
    const ids = [];
    for await (const s of agent.sessions.all()) ids.push(s.id);
    assert.ok(ids.includes(session.id));
    await agent.sessions.delete(session.id);
    await assert.rejects(agent.sessions.get(session.id), (e) => e.code === Code.NotFound);
  });

  test("workspaces and Execute through the agent", async () => {
    const workspace = await agent.workspaces.create({ name: `ts-agent-${process.pid}` });
    try {
      assert.ok((await agent.workspaces.list()).some((w) => w.id === workspace.id));
      const { stdout, exit } = await agent
        .execute({ workspaceId: workspace.id, script: "read line; echo got $line", stdin: "it\n" })
        .collect();
      assert.equal(stdout, "got it\n");
      assert.equal(exit.exitCode, 0);
    } finally {
      await agent.workspaces.delete(workspace.id);
    }
  });
});

describe("errors", () => {
  test("an unknown session and an unknown run are NOT_FOUND (never retried)", async () => {
    await assert.rejects(agent.sessions.get("ses-doesnotexist"), (e) => e instanceof FireboxError && e.code === Code.NotFound);
    const stream = agent.streamRun({ runId: "run-doesnotexist" });
    await assert.rejects(stream.collect(), (e) => e instanceof FireboxError && e.codeName === "NOT_FOUND");
    assert.equal(stream.reconnects, 0);
  });

  test("no token, or a wrong one, is UNAUTHENTICATED", async () => {
    for (const token of [undefined, "wrong"]) {
      const client = createAgentClient({ address: AGENT, token });
      await assert.rejects(client.sessions.create(), (e) => e instanceof FireboxError && e.code === Code.Unauthenticated);
      const stream = client.sendMessage({ sessionId: "ses-x", content: "hi" });
      await assert.rejects(stream.collect(), (e) => e.code === Code.Unauthenticated);
    }
  });
});
