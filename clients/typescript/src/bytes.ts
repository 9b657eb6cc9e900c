/** What a message may carry at most in one piece of stdin or of an uploaded file: far below the
 * server's 16 MiB message limit, and small enough to interleave with other messages. */
export const PIECE_BYTES = 256 << 10;

/** UTF-8 text or bytes, as bytes. */
export function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

/** `data` cut into views of at most PIECE_BYTES (no copy). */
export function* pieces(data: Uint8Array): Generator<Uint8Array> {
  for (let start = 0; start < data.length; start += PIECE_BYTES) {
    yield data.subarray(start, start + PIECE_BYTES);
  }
}
