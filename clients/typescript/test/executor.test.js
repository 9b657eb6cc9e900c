// The executor client against a real executor (Docker workspaces), token required.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Code, createExecutorClient, FireboxError, FileType, SessionStatus } from "../dist/index.js";
import { EXECUTOR, TOKEN } from "./helpers.js";

const executor = createExecutorClient({ address: EXECUTOR, token: TOKEN, timeoutMs: 60_000 });
let workspace;

before(async () => {
  workspace = await executor.workspaces.create({ name: `ts-client-${process.pid}` });
});

after(async () => {
  if (workspace) await executor.workspaces.delete(workspace.id);
});

/** Read an execution's output until `predicate(text so far)` holds. */
async function readUntil(iterator, predicate) {
  let text = "";
  while (!predicate(text)) {
    const next = await iterator.next();
    assert.ok(!next.done, `output ended before the expected text; got ${JSON.stringify(text)}`);
    text += next.value.text;
  }
  return text;
}

describe("Execute", () => {
  test("stdin is written while the program runs, and end of input lets it finish", async () => {
    const run = executor.execute({ workspaceId: workspace.id, script: "cat; echo done >&2" });
    const output = run[Symbol.asyncIterator]();
    await run.write("hello\n");
    // cat echoes the first line back before any more input: the program is live, not batched.
    assert.equal(await readUntil(output, (t) => t.includes("hello\n")), "hello\n");
    await run.write(new TextEncoder().encode("world\n"));
    run.closeInput();
    const rest = { stdout: "", stderr: "" };
    for (let next = await output.next(); !next.done; next = await output.next()) {
      rest[next.value.stream] += next.value.text;
    }
    assert.deepEqual(rest, { stdout: "world\n", stderr: "done\n" });
    const exit = await run.exit;
    assert.equal(exit.exitCode, 0);
    assert.equal(exit.reason, "EXITED");
    assert.match(exit.executionId, /\S/);
    assert.ok(exit.pid > 0);
    await assert.rejects(run.write("late"), (e) => e instanceof FireboxError && e.code === Code.FailedPrecondition);
  });

  test("a terminal execution sees its window size, and a resize reaches the program", async () => {
    const run = executor.execute({
      workspaceId: workspace.id,
      script: 'stty size; trap "stty size; exit 0" WINCH; echo ready; while :; do sleep 0.1; done',
      tty: true,
      winsize: { rows: 30, cols: 100 },
    });
    const output = run[Symbol.asyncIterator]();
    assert.match(await readUntil(output, (t) => t.includes("ready")), /^30 100\r?\n/);
    run.resize(40, 120);
    assert.match(await readUntil(output, (t) => /40 120/.test(t)), /40 120/);
    const exit = await run.exit;
    assert.equal(exit.exitCode, 0);
  });

  test("stdin given up front, collected with its exit", async () => {
    const { stdout, exit } = await executor
      .execute({ workspaceId: workspace.id, argv: ["wc", "-c"], stdin: "12345" })
      .collect();
    assert.equal(stdout.trim(), "5");
    assert.equal(exit.exitCode, 0);
  });

  test("a large stdin write goes in pieces and arrives whole, in order", async () => {
    // Bigger than one input message (256 KiB): kept small because stdin into a workspace is slow.
    const input = new Uint8Array(600_001).map((_, i) => i % 253);
    const run = executor.execute({ workspaceId: workspace.id, script: "md5sum; echo done >&2" });
    const written = run.write(input).then(() => run.closeInput());
    const { stdout, stderr, exit } = await run.collect();
    await written;
    assert.equal(stdout.split(" ")[0], createHash("md5").update(input).digest("hex"));
    assert.equal(stderr, "done\n");
    assert.equal(exit.exitCode, 0);
  });

  test("stop interrupts a running program and says so", async () => {
    const run = executor.execute({ workspaceId: workspace.id, script: "echo ready; sleep 60" });
    const output = run[Symbol.asyncIterator]();
    await readUntil(output, (t) => t.includes("ready"));
    run.stop("interrupt");
    while (!(await output.next()).done);
    const exit = await run.exit;
    assert.equal(exit.reason, "STOPPED");
    assert.ok(exit.durationMs < 60_000);
  });

  test("stop with kill ends it at once", async () => {
    const run = executor.execute({ workspaceId: workspace.id, script: "trap '' INT; echo ready; sleep 60" });
    const output = run[Symbol.asyncIterator]();
    await readUntil(output, (t) => t.includes("ready"));
    run.stop("kill");
    while (!(await output.next()).done);
    assert.equal((await run.exit).reason, "STOPPED");
  });

  test("the server's time limit ends a program as TIMED_OUT", async () => {
    const { exit } = await executor
      .execute({ workspaceId: workspace.id, script: "sleep 60", timeoutSeconds: 1 })
      .collect();
    assert.equal(exit.reason, "TIMED_OUT");
  });

  test("an AbortSignal cancels the call, and the session is free for the next command", async () => {
    const session = await executor.sessions.create(workspace.id);
    const controller = new AbortController();
    const run = executor.execute(
      { workspaceId: workspace.id, sessionId: session.id, script: "echo ready; sleep 60" },
      { signal: controller.signal },
    );
    const output = run[Symbol.asyncIterator]();
    await readUntil(output, (t) => t.includes("ready"));
    controller.abort();
    await assert.rejects(output.next(), (e) => e instanceof FireboxError && e.code === Code.Canceled);
    await assert.rejects(run.exit, (e) => e instanceof FireboxError && e.code === Code.Canceled);
    // The server kills the cancelled command: the session turns idle and takes the next one.
    for (let tries = 0; ; tries++) {
      const [state] = (await executor.sessions.list(workspace.id)).filter((s) => s.id === session.id);
      if (state.status === SessionStatus.IDLE) break;
      assert.ok(tries < 300, "the cancelled command was never killed");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const next = await executor
      .execute({ workspaceId: workspace.id, sessionId: session.id, script: "echo after" }, { timeoutMs: 30_000 })
      .collect();
    assert.equal(next.stdout, "after\n");
    await executor.sessions.close(session.id);
  });

  test("a deadline fails the call with DEADLINE_EXCEEDED", async () => {
    const run = executor.execute({ workspaceId: workspace.id, script: "sleep 60" }, { timeoutMs: 500 });
    await assert.rejects(run.collect(), (e) => e instanceof FireboxError && e.code === Code.DeadlineExceeded);
  });

  test("leaving the output loop early cancels the call", async () => {
    const run = executor.execute({ workspaceId: workspace.id, script: "echo ready; sleep 60" });
    for await (const out of run) {
      if (out.text.includes("ready")) break;
    }
    await assert.rejects(run.exit, (e) => e instanceof FireboxError && e.code === Code.Canceled);
  });

  test("a shell session keeps the directory and variables between commands", async () => {
    const session = await executor.sessions.create(workspace.id);
    try {
      await executor.execute({ workspaceId: workspace.id, sessionId: session.id, script: "cd /tmp; export X=42" }).collect();
      const { stdout } = await executor
        .execute({ workspaceId: workspace.id, sessionId: session.id, script: 'echo "$PWD $X"' })
        .collect();
      assert.equal(stdout, "/tmp 42\n");
      const listed = await executor.sessions.list(workspace.id);
      assert.ok(listed.some((s) => s.id === session.id));
    } finally {
      await executor.sessions.close(session.id);
    }
  });

  test("output is decoded as UTF-8 without splitting characters", async () => {
    const { stdout } = await executor
      .execute({ workspaceId: workspace.id, script: "printf '\\303'; sleep 0.2; printf '\\251\\n'" })
      .collect();
    assert.equal(stdout, "é\n");
  });
});

describe("files", () => {
  test("write, stat, list and read back a file", async () => {
    const written = await executor.files.write(workspace.id, "notes/a.txt", "hello, file\n", { createParents: true });
    assert.equal(written.file.path, "/workspace/notes/a.txt");
    assert.equal(written.sha256.length, 64);
    const info = await executor.files.stat(workspace.id, "notes/a.txt");
    assert.equal(info.type, FileType.REGULAR);
    assert.equal(info.size, 12n);
    const listing = await executor.files.list(workspace.id, "notes");
    assert.deepEqual(listing.entries.map((e) => e.name), ["a.txt"]);
    const data = await executor.files.read(workspace.id, "notes/a.txt");
    assert.equal(new TextDecoder().decode(data), "hello, file\n");
    const streamed = executor.files.readStream(workspace.id, "notes/a.txt");
    const pieces = [];
    for await (const piece of streamed.data) pieces.push(Buffer.from(piece));
    assert.equal(Buffer.concat(pieces).toString(), "hello, file\n");
    assert.equal((await streamed.info).size, 12n);
    await assert.rejects(
      executor.files.write(workspace.id, "notes/a.txt", "again"),
      (e) => e instanceof FireboxError && e.code === Code.AlreadyExists,
    );
  });

  test("a large file round-trips in chunks, and maxBytes bounds a read", async () => {
    const big = new Uint8Array(1_500_000).map((_, i) => i % 251);
    await executor.files.write(workspace.id, "big.bin", big);
    assert.deepEqual(new Uint8Array(await executor.files.read(workspace.id, "big.bin")), big);
    await assert.rejects(
      executor.files.read(workspace.id, "big.bin", { maxBytes: 1000 }),
      (e) => e instanceof FireboxError && e.code === Code.ResourceExhausted,
    );
  });
});

describe("errors", () => {
  test("an unknown workspace is NOT_FOUND with the gRPC code and name", async () => {
    const error = await executor.workspaces.get("ws_doesnotexist").catch((e) => e);
    assert.ok(error instanceof FireboxError);
    assert.equal(error.code, Code.NotFound);
    assert.equal(error.codeName, "NOT_FOUND");
    assert.match(error.rawMessage, /ws_doesnotexist/);
  });

  test("a missing file is NOT_FOUND, for read and for readStream's data and info", async () => {
    const notFound = (e) => e instanceof FireboxError && e.code === Code.NotFound;
    await assert.rejects(executor.files.read(workspace.id, "no/such/file"), notFound);
    const { info, data } = executor.files.readStream(workspace.id, "no/such/file");
    await assert.rejects(data.next(), notFound);
    await assert.rejects(info, notFound);
  });

  test("no token, or a wrong one, is UNAUTHENTICATED", async () => {
    for (const token of [undefined, "not-the-token"]) {
      const client = createExecutorClient({ address: EXECUTOR, token });
      const error = await client.workspaces.list().catch((e) => e);
      assert.ok(error instanceof FireboxError, String(error));
      assert.equal(error.codeName, "UNAUTHENTICATED");
      const run = client.execute({ workspaceId: workspace.id, script: "true" });
      await assert.rejects(run.exit, (e) => e.code === Code.Unauthenticated);
    }
  });

  test("nothing listening is UNAVAILABLE", async () => {
    const client = createExecutorClient({ address: "127.0.0.1:9", token: TOKEN, timeoutMs: 10_000 });
    await assert.rejects(client.serverInfo(), (e) => e instanceof FireboxError && e.code === Code.Unavailable);
  });
});
