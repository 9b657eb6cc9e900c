// `firebox mcp` driven by the official MCP TypeScript SDK, as an editor extension or a Node agent
// would: over stdio (the CLI launched as the server's command) and over streamable HTTP with a
// bearer token. Started by tests/integration/mcp_server/test_firebox_mcp_node_client.py, which
// runs a real executor and passes FIREBOX_BIN, FIREBOX_EXECUTOR, FIREBOX_AUTH_TOKEN and
// FIREBOX_MCP_URL in the environment.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { FIREBOX_BIN, FIREBOX_EXECUTOR, FIREBOX_AUTH_TOKEN, FIREBOX_MCP_URL } = process.env;
for (const [name, value] of Object.entries({ FIREBOX_BIN, FIREBOX_EXECUTOR, FIREBOX_AUTH_TOKEN, FIREBOX_MCP_URL })) {
  if (!value) throw new Error(`${name} must be set (run through pytest)`);
}

function data(result) {
  assert.equal(result.isError ?? false, false, JSON.stringify(result.content));
  return result.structuredContent ?? JSON.parse(result.content[0].text);
}

async function connected(transport) {
  const client = new Client({ name: "firebox-node-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

test("an MCP client in Node runs commands and files in a workspace over stdio", async () => {
  const client = await connected(
    new StdioClientTransport({
      command: FIREBOX_BIN,
      args: ["mcp"],
      env: { PATH: process.env.PATH, FIREBOX_EXECUTOR, FIREBOX_AUTH_TOKEN },
    }),
  );
  try {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const wanted of ["create_workspace", "run_command", "read_file", "write_file", "list_files", "run_named_tool"]) {
      assert.ok(names.includes(wanted), `missing ${wanted} in ${names}`);
    }
    const runCommand = tools.find((t) => t.name === "run_command");
    assert.deepEqual(runCommand.inputSchema.required.sort(), ["command", "workspace_id"]);

    const ws = data(await client.callTool({ name: "create_workspace", arguments: { name: "mcp-node" } })).workspace_id;
    try {
      const session = data(await client.callTool({ name: "open_session", arguments: { workspace_id: ws } })).session_id;
      await client.callTool({ name: "run_command", arguments: { workspace_id: ws, session_id: session, command: "cd /tmp" } });
      const ran = data(
        await client.callTool({
          name: "run_command",
          arguments: { workspace_id: ws, session_id: session, command: "pwd; echo err >&2; exit 4" },
        }),
      );
      assert.equal(ran.stdout, "/tmp\n");
      assert.equal(ran.stderr, "err\n");
      assert.equal(ran.exit_code, 4);

      data(await client.callTool({ name: "write_file", arguments: { workspace_id: ws, path: "hello.txt", content: "from node\n" } }));
      const read = data(await client.callTool({ name: "read_file", arguments: { workspace_id: ws, path: "hello.txt" } }));
      assert.equal(read.content, "from node\n");

      const missing = await client.callTool({ name: "read_file", arguments: { workspace_id: ws, path: "absent.txt" } });
      assert.equal(missing.isError, true);
      assert.match(missing.content[0].text, /NOT_FOUND/);
    } finally {
      data(await client.callTool({ name: "delete_workspace", arguments: { workspace_id: ws } }));
    }
  } finally {
    await client.close();
  }
});

test("over streamable HTTP the caller's bearer token is what the executor checks", async () => {
  const anonymous = await connected(new StreamableHTTPClientTransport(new URL(FIREBOX_MCP_URL)));
  try {
    const refused = await anonymous.callTool({ name: "list_workspaces", arguments: {} });
    assert.equal(refused.isError, true);
    assert.match(refused.content[0].text, /UNAUTHENTICATED/);
  } finally {
    await anonymous.close();
  }

  const client = await connected(
    new StreamableHTTPClientTransport(new URL(FIREBOX_MCP_URL), {
      requestInit: { headers: { Authorization: `Bearer ${FIREBOX_AUTH_TOKEN}` } },
    }),
  );
  try {
    const listed = data(await client.callTool({ name: "list_workspaces", arguments: {} }));
    assert.ok(Array.isArray(listed.workspaces));
  } finally {
    await client.close();
  }
});
