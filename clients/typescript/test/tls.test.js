// TLS: a private CA's server certificate, client certificates required (mutual TLS), and the token.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Code, createExecutorClient, FireboxError } from "../dist/index.js";
import { TOKEN } from "./helpers.js";

const ADDRESS = process.env.FIREBOX_TEST_TLS_EXECUTOR;
const DIR = process.env.FIREBOX_TEST_TLS_DIR;
const pem = (name) => readFileSync(join(DIR, name));

test("TLS with the CA and a client certificate reaches the executor", async () => {
  assert.ok(ADDRESS && DIR, "the harness sets FIREBOX_TEST_TLS_EXECUTOR and FIREBOX_TEST_TLS_DIR");
  const executor = createExecutorClient({
    address: ADDRESS,
    token: TOKEN,
    tls: { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client-key.pem") },
    timeoutMs: 30_000,
  });
  const info = await executor.serverInfo();
  assert.match(info.instanceId, /\S/);
  assert.ok(Array.isArray(await executor.workspaces.list()));
  // The same, as an https:// address with PEM text.
  const again = createExecutorClient({
    address: `https://${ADDRESS}`,
    token: TOKEN,
    tls: { ca: pem("ca.pem").toString(), cert: pem("client.pem").toString(), key: pem("client-key.pem").toString() },
  });
  assert.equal((await again.serverInfo()).instanceId, info.instanceId);
  // TLS does not replace the token.
  const noToken = createExecutorClient({
    address: ADDRESS,
    tls: { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client-key.pem") },
  });
  await assert.rejects(noToken.workspaces.list(), (e) => e instanceof FireboxError && e.code === Code.Unauthenticated);
});

test("a server certificate from an untrusted CA, a missing client certificate, or plaintext fail as UNAVAILABLE", async () => {
  const attempts = {
    "system CAs only": { tls: true },
    "no client certificate": { tls: { ca: pem("ca.pem") } },
    plaintext: {},
  };
  for (const [what, options] of Object.entries(attempts)) {
    const client = createExecutorClient({ address: ADDRESS, token: TOKEN, timeoutMs: 10_000, ...options });
    const error = await client.serverInfo().catch((e) => e);
    assert.ok(error instanceof FireboxError, `${what}: ${error}`);
    assert.ok(
      error.code === Code.Unavailable,
      `${what}: ${error.codeName} ${error.rawMessage}`,
    );
  }
});
