// examples/notebook-runner.ts, built to dist-examples/, against the real executor.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { createExecutorClient } from "../dist/index.js";
import { NotebookKernel } from "../dist-examples/examples/notebook-runner.js";
import { EXECUTOR, TOKEN } from "./helpers.js";

test("the notebook runner example runs its cells as an editor would", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["dist-examples/examples/notebook-runner.js"], {
    env: { ...process.env, FIREBOX_EXECUTOR: EXECUTOR, FIREBOX_AUTH_TOKEN: TOKEN },
    timeout: 60_000,
  });
  assert.equal(
    stdout,
    [
      "setup: EXITED",
      "[ask stdout] hello, notebook, from /tmp",
      "ask: exit 0",
      "[loop stdout] tick 1",
      "[loop stdout] tick 2",
      "[loop stdout] tick 3",
      "loop: STOPPED",
      "",
    ].join("\n"),
  );
});

test("cells queue behind a running one, and a queued cell that is stopped stops when it starts", async () => {
  const executor = createExecutorClient({ address: EXECUTOR, token: TOKEN });
  const kernel = await NotebookKernel.open(executor, { notebook: "queue.ipynb" });
  try {
    const order = [];
    const texts = { a: "", b: "", c: "" };
    const sink = (name) => ({
      output: (_stream, text) => {
        if (order.at(-1) !== name) order.push(name);
        texts[name] += text;
      },
    });
    const first = kernel.run({ id: "a", source: "echo start; read line; echo got $line" }, sink("a"));
    const second = kernel.run({ id: "b", source: "echo second" }, sink("b"));
    const third = kernel.run({ id: "c", source: "sleep 60" }, sink("c"));
    third.stop();
    await first.input("go\n");
    assert.equal((await first.done).exitCode, 0);
    assert.equal((await second.done).exitCode, 0);
    assert.equal((await third.done).reason, "STOPPED");
    assert.equal(texts.a, "start\ngot go\n");
    assert.equal(texts.b, "second\n");
    assert.deepEqual(order.slice(0, 2), ["a", "b"]);
  } finally {
    await kernel.close();
  }
});
