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

  /** Turn anything thrown by a call into a FireboxError (it is returned as it is if already one). */
  static from(reason: unknown): FireboxError {
    if (reason instanceof FireboxError) return reason;
    const error = ConnectError.from(reason);
    return new FireboxError(error.code, error.rawMessage, { cause: reason, metadata: error.metadata });
  }
}

/** Await a call, turning its failure into a FireboxError. */
export async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (reason) {
    throw FireboxError.from(reason);
  }
}

/** Iterate a streamed call, turning its failure into a FireboxError. */
export async function* stream<T>(responses: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* responses;
  } catch (reason) {
    throw FireboxError.from(reason);
  }
}
