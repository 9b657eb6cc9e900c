// Shared by the tests: where the services are (started by the Python harness,
// tests/integration/typescript/test_typescript_client.py) and a TCP proxy that can cut connections.
import net from "node:net";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: these tests run against real services; run them with ` +
        "`.venv/bin/pytest tests/integration/typescript` (or set FIREBOX_TEST_EXECUTOR, " +
        "FIREBOX_TEST_AGENT and FIREBOX_TEST_TOKEN yourself)",
    );
  }
  return value;
}

export const EXECUTOR = required("FIREBOX_TEST_EXECUTOR");
export const AGENT = required("FIREBOX_TEST_AGENT");
export const TOKEN = required("FIREBOX_TEST_TOKEN");
/** The fake model answers every message with this many text deltas "w0 ", "w1 ", ... */
export const REPLY_DELTAS = Number(process.env.FIREBOX_TEST_REPLY_DELTAS ?? "0");
export const REPLY_TEXT = Array.from({ length: REPLY_DELTAS }, (_, n) => `w${n} `).join("");

/**
 * A TCP proxy in front of `target` whose `drop()` resets every connection through it at once,
 * as a network failure or a load balancer restart would; new connections are accepted after.
 */
export async function startProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const sockets = new Set();
  let connections = 0;
  const server = net.createServer((client) => {
    connections += 1;
    const upstream = net.connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${server.address().port}`,
    get connections() {
      return connections;
    },
    drop() {
      for (const socket of sockets) socket.resetAndDestroy();
      sockets.clear();
    },
    close() {
      this.drop();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Text of the textDelta events. */
export function textOf(events) {
  return events
    .filter((e) => e.event.case === "textDelta")
    .map((e) => e.event.value.text)
    .join("");
}
