// `npm pack` makes a tarball that installs into an empty project, imports as ESM and type-checks.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const PACKAGE = dirname(dirname(fileURLToPath(import.meta.url)));

test("npm pack gives an installable tarball with ESM code and types", async () => {
  const dir = await mkdtemp(join(tmpdir(), "firebox-client-pack-"));
  try {
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: PACKAGE });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf("[")));
    const files = packed.files.map((f) => f.path);
    assert.ok(files.includes("dist/index.js") && files.includes("dist/index.d.ts"), files.join(" "));
    assert.ok(files.includes("dist/gen/firebox/agent/v1/agent_pb.js"));
    assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/")), files.join(" "));

    const app = join(dir, "app");
    await run("mkdir", ["-p", app]);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    // Dependencies come from npm's cache when `npm ci` already fetched them.
    await run(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", join(dir, packed.filename)],
      { cwd: app },
    );
    const imported = await run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import * as f from "@firebox/client";
         const e = f.createExecutorClient({ address: "127.0.0.1:9" });
         console.log(JSON.stringify({
           clients: [typeof f.createAgentClient, typeof e.execute],
           error: new f.FireboxError(f.Code.NotFound, "x").codeName,
           service: f.agentv1.AgentService.typeName,
         }));`,
      ],
      { cwd: app },
    );
    assert.deepEqual(JSON.parse(imported.stdout), {
      clients: ["function", "function"],
      error: "NOT_FOUND",
      service: "firebox.agent.v1.AgentService",
    });

    // A TypeScript consumer type-checks against the shipped declarations, and a wrong use does not.
    await writeFile(
      join(app, "ok.ts"),
      `import { createExecutorClient, type Exit } from "@firebox/client";
       const executor = createExecutorClient({ address: "127.0.0.1:50051", token: "t" });
       const run = executor.execute({ workspaceId: "ws", script: "ls" });
       export const exit: Promise<Exit> = run.exit;
       for await (const out of run) { const s: "stdout" | "stderr" = out.stream; console.log(s, out.text); }
      `,
    );
    await writeFile(
      join(app, "bad.ts"),
      `import { createExecutorClient } from "@firebox/client";
       createExecutorClient({ address: "x" }).execute({ workspace: "ws" });
      `,
    );
    const tsc = join(PACKAGE, "node_modules", "typescript", "bin", "tsc");
    const flags = ["--noEmit", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "nodenext"];
    await run(process.execPath, [tsc, ...flags, "ok.ts"], { cwd: app });
    await assert.rejects(run(process.execPath, [tsc, ...flags, "bad.ts"], { cwd: app }), (e) =>
      /workspace/.test(e.stdout),
    );
    const manifest = JSON.parse(await readFile(join(app, "node_modules", "@firebox", "client", "package.json"), "utf8"));
    assert.equal(manifest.type, "module");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
