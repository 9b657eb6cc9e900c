import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

/** gRPC's names for status codes, as servers, grpcurl and Firebox's docs spell them. */
const CODE_NAMES: Record<Code, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/**
 * Every failed call rejects with a FireboxError: `code` is the gRPC status code (connect's `Code`
 * enum, numerically the gRPC codes), `codeName` its gRPC name ("NOT_FOUND"), `rawMessage` the
 * server's message without decoration.
 */
export class FireboxError extends Error {
  override readonly name = "FireboxError";
  readonly code: Code;
  readonly codeName: string;
  readonly rawMessage: string;
  /** Response metadata (trailers) the server sent with the status, if any. */
  readonly metadata: Headers;

  constructor(code: Code, rawMessage: string, options: { cause?: unknown; metadata?: Headers } = {}) {
    super(`[${CODE_NAMES[code] ?? code}] ${rawMessage}`, { cause: options.cause });
    this.code = code;
    this.codeName = CODE_NAMES[code] ?? String(code);
    this.rawMessage = rawMessage;
    this.metadata = options.metadata ?? new Headers();
  }

  /**
   * Turn anything thrown by a call into a FireboxError (returned as it is if already one).
   * A TLS handshake that failed (an untrusted or mismatched certificate) is UNAVAILABLE, as in
   * other gRPC clients, rather than the INTERNAL Node's error would otherwise map to.
   * `signal` is the call's own: a CANCELLED the client did not ask for (an HTTP/2 stream reset by
   * the server or a proxy, e.g. a TLS client certificate refused after the handshake) becomes
   * UNAVAILABLE, the code gRPC gives a connection that failed, so that it is never mistaken for
   * the caller's own cancellation.
   */
  static from(reason: unknown, signal?: AbortSignal): FireboxError {
    if (reason instanceof FireboxError) return reason;
    const error = ConnectError.from(reason);
    if (error.code === Code.Internal && tlsFailure(reason)) {
      return new FireboxError(Code.Unavailable, `TLS handshake failed: ${error.rawMessage}`, {
        cause: reason,
        metadata: error.metadata,
      });
    }
    if (error.code === Code.Canceled && !signal?.aborted) {
      return new FireboxError(Code.Unavailable, `the connection ended the call: ${error.rawMessage}`, {
        cause: reason,
        metadata: error.metadata,
      });
    }
    return new FireboxError(error.code, error.rawMessage, { cause: reason, metadata: error.metadata });
  }
}

// Node's codes for certificate and TLS protocol failures (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE,
// SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID, ERR_SSL_..., EPROTO).
const TLS_ERROR_CODE = /CERT|SSL|TLS|EPROTO|UNABLE_TO_|SELF_SIGNED/;

function tlsFailure(reason: unknown): boolean {
  for (let depth = 0; reason instanceof Error && depth < 8; depth++) {
    const code = (reason as { code?: unknown }).code;
    if (typeof code === "string" && TLS_ERROR_CODE.test(code)) return true;
    reason = reason.cause;
  }
  return false;
}

/** Await a call, turning its failure into a FireboxError. */
export async function call<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await promise;
  } catch (reason) {
    throw FireboxError.from(reason, signal);
  }
}

/** Iterate a streamed call, turning its failure into a FireboxError. */
export async function* stream<T>(responses: AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T> {
  try {
    yield* responses;
  } catch (reason) {
    throw FireboxError.from(reason, signal);
  }
}
