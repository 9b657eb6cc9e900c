import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/** PEM text or bytes. */
export type Pem = string | Uint8Array;

export interface TlsOptions {
  /** CA certificates to trust instead of the system's (e.g. a private CA's certificate). */
  ca?: Pem;
  /** Client certificate chain and key, for servers that require client certificates. */
  cert?: Pem;
  key?: Pem;
  /** The name to check the server's certificate against, when it differs from the address's host. */
  serverName?: string;
}

export interface ConnectionOptions {
  /** "HOST:PORT" (plaintext unless `tls` is set), or "http://HOST:PORT" / "https://HOST:PORT". */
  address: string;
  /** Sent as `authorization: Bearer <token>` on every call (the servers' FIREBOX_AUTH_TOKEN). */
  token?: string;
  /** TLS: `true` trusts the system's CAs; an object gives the CA and/or client certificate. */
  tls?: boolean | TlsOptions;
  /** Deadline of every unary call that sets none, in milliseconds (streams have none by default). */
  timeoutMs?: number;
  /** Interceptors run on every call, after the one adding the token. */
  interceptors?: Interceptor[];
}

/** What every client built from ConnectionOptions holds. */
export interface Connection {
  readonly transport: Transport;
  readonly timeoutMs: number | undefined;
}

function pem(value: Pem | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  return typeof value === "string" ? Buffer.from(value) : Buffer.from(value);
}

/** A gRPC (HTTP/2) transport to a Firebox service, with the token and TLS settings applied. */
export function connect(options: ConnectionOptions): Connection {
  const address = options.address.trim();
  if (!address) throw new TypeError("address is required, e.g. 127.0.0.1:50051");
  const tls = options.tls === true ? {} : options.tls || undefined;
  let baseUrl: string;
  if (/^https?:\/\//.test(address)) {
    if (address.startsWith("http://") && tls) throw new TypeError("tls is set but the address is http://");
    baseUrl = address;
  } else {
    baseUrl = `${tls ? "https" : "http"}://${address}`;
  }
  const interceptors: Interceptor[] = [];
  if (options.token) {
    const value = `Bearer ${options.token}`;
    interceptors.push((next) => (request) => {
      request.header.set("authorization", value);
      return next(request);
    });
  }
  interceptors.push(...(options.interceptors ?? []));
  const transport = createGrpcTransport({
    baseUrl,
    interceptors,
    nodeOptions: tls
      ? { ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key), servername: tls.serverName }
      : undefined,
  });
  return { transport, timeoutMs: options.timeoutMs };
}

/** Per-call options every method takes. */
export interface CallOptions {
  /** Cancels the call (and, for Execute, stops the program: its end reason is CANCELLED). */
  signal?: AbortSignal;
  /** Deadline in milliseconds; the call fails with DEADLINE_EXCEEDED past it. */
  timeoutMs?: number;
  /** Extra request metadata. */
  headers?: Record<string, string>;
}

/** Call options for a unary call: the connection's default deadline unless the call sets one. */
export function unary(connection: Connection, options: CallOptions = {}): CallOptions {
  return { ...options, timeoutMs: options.timeoutMs ?? connection.timeoutMs };
}
