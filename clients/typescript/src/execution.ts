import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions } from "./connection.js";
import { pieces, toBytes } from "./bytes.js";
import { Channel, linkedAbort, type LinkedAbort } from "./channel.js";
import { Code, FireboxError } from "./errors.js";
import {
  EndReason,
  StopSignal,
  type ExecuteRequestSchema,
  type ExecuteResponse,
} from "./gen/firebox/executor/v1/executor_pb.js";

type ExecuteRequestInit = MessageInitShape<typeof ExecuteRequestSchema>;

/** What to run: the first ExecuteRequest, in JavaScript's terms. */
export interface ExecuteOptions {
  workspaceId: string;
  /** A shell session whose state (cd, variables, functions) carries over; empty: a fresh shell. */
  sessionId?: string;
  /** Shell text to run. Exactly one of `script` and `argv`. */
  script?: string;
  /** A program and its arguments, without shell interpretation. */
  argv?: string[];
  /** Working directory, relative to /workspace unless absolute. */
  directory?: string;
  env?: Record<string, string>;
  /** The program's time limit on the server (it is killed past it: end reason TIMED_OUT). */
  timeoutSeconds?: number;
  /** The notebook cell's id and name (RunMe's known_id / known_name), for the training log. */
  knownId?: string;
  knownName?: string;
  /** Run on a terminal (a pseudo-terminal in the workspace): output arrives as the terminal made it. */
  tty?: boolean;
  /** The terminal's size (default 24x80); change it later with `resize()`. Needs `tty`. */
  winsize?: { rows: number; cols: number };
  /** Standard input written at once, followed by end of input. */
  stdin?: string | Uint8Array;
}

/** A piece of output. `text` is `data` decoded as UTF-8, never splitting a character between pieces. */
export interface Output {
  stream: "stdout" | "stderr";
  data: Uint8Array;
  text: string;
}

/** How the program ended (the last ExecuteResponse). */
export interface Exit {
  executionId: string;
  pid: number;
  /** The exit status; undefined when it has none (e.g. killed by a signal before it could exit). */
  exitCode: number | undefined;
  endReason: EndReason;
  /** The end reason's name: "EXITED", "SIGNALED", "TIMED_OUT", "STOPPED", "CANCELLED", ... */
  reason: string;
  /** A sentence for people, e.g. "killed after the 10s timeout". */
  message: string;
  outputTruncated: boolean;
  sessionEnded: boolean;
  durationMs: number;
}

/** All output of a program and how it ended (see Execution.collect). */
export interface Collected {
  stdout: string;
  stderr: string;
  /** More output arrived than `maxBytes`; the rest was dropped. */
  truncated: boolean;
  exit: Exit;
}

// Input not yet taken by the transport, and output not yet read, are held up to these sizes;
// past them `write()` waits and the server's output waits (gRPC flow control) respectively.
const MAX_PENDING_INPUT_BYTES = 1 << 20;
const MAX_PENDING_OUTPUT_BYTES = 4 << 20;

export type StartExecute = (
  requests: AsyncIterable<ExecuteRequestInit>,
  options: CallOptions,
) => AsyncIterable<ExecuteResponse>;

/** A google.protobuf.Duration from seconds; undefined (the server's default) for none or 0. */
export function duration(seconds: number | undefined): { seconds: bigint; nanos: number } | undefined {
  if (seconds === undefined || seconds === 0) return undefined;
  if (!Number.isFinite(seconds) || seconds < 0) throw new TypeError("a timeout must be a positive number of seconds");
  return { seconds: BigInt(Math.floor(seconds)), nanos: Math.round((seconds % 1) * 1e9) };
}

/** The first request from ExecuteOptions. */
export function firstRequest(options: ExecuteOptions): ExecuteRequestInit {
  return {
    workspaceId: options.workspaceId,
    sessionId: options.sessionId ?? "",
    script: options.script ?? "",
    argv: options.argv ?? [],
    directory: options.directory ?? "",
    env: options.env ?? {},
    timeout: duration(options.timeoutSeconds),
    knownId: options.knownId ?? "",
    knownName: options.knownName ?? "",
    tty: options.tty ?? false,
    ...(options.winsize ? { winsize: { rows: options.winsize.rows, cols: options.winsize.cols } } : {}),
  };
}

/**
 * A running program. Iterate it for its output, send input with `write()` / `closeInput()`, ask it
 * to end with `stop()`; `exit` resolves with how it ended once its output has been read.
 *
 *     const run = executor.execute({ workspaceId, script: "cat" });
 *     await run.write("hello\n");
 *     run.closeInput();
 *     for await (const out of run) process.stdout.write(out.text);
 *     console.log((await run.exit).exitCode);
 *
 * Output is held (up to 4 MiB) until read: read it, or call `collect()`, or `exit` waits with it.
 * Leaving the loop early (`break`) cancels the call, and the server kills the program.
 */
export class Execution implements AsyncIterable<Output> {
  /** How the program ended; rejects with a FireboxError if the call failed. */
  readonly exit: Promise<Exit>;
  /** The execution id and pid, from the first response. */
  readonly started: Promise<{ executionId: string; pid: number }>;
  private readonly requests = new Channel<ExecuteRequestInit>(MAX_PENDING_INPUT_BYTES);
  private readonly output: Channel<Output>;
  private readonly abort: LinkedAbort;
  private inputClosed = false;

  constructor(start: StartExecute, options: ExecuteOptions, callOptions: CallOptions = {}) {
    this.abort = linkedAbort(callOptions.signal);
    this.output = new Channel<Output>(MAX_PENDING_OUTPUT_BYTES, () => this.cancel());
    void this.requests.push(firstRequest(options));
    let resolveStarted!: (value: { executionId: string; pid: number }) => void;
    let rejectStarted!: (reason: unknown) => void;
    this.started = new Promise((resolve, reject) => {
      resolveStarted = resolve;
      rejectStarted = reject;
    });
    // The transport may ask a request iterable for its iterator more than once: hand it one.
    const requests = this.requests[Symbol.asyncIterator]();
    const responses = start({ [Symbol.asyncIterator]: () => requests }, { ...callOptions, signal: this.abort.signal });
    this.exit = this.pump(responses, resolveStarted);
    this.exit.catch(rejectStarted);
    // Whoever awaits them sees the failure; no unhandled rejection when nobody does.
    this.exit.catch(() => {});
    this.started.catch(() => {});
    if (options.stdin !== undefined) {
      void this.write(options.stdin).catch(() => {});
      this.closeInput();
    }
  }

  private async pump(
    responses: AsyncIterable<ExecuteResponse>,
    started: (value: { executionId: string; pid: number }) => void,
  ): Promise<Exit> {
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    let executionId = "";
    let pid = 0;
    let exit: Exit | undefined;
    try {
      for await (const response of responses) {
        if (!executionId && response.executionId) {
          executionId = response.executionId;
          pid = response.pid;
          started({ executionId, pid });
        }
        for (const [stream, data] of [
          ["stdout", response.stdoutData],
          ["stderr", response.stderrData],
        ] as const) {
          if (data.length) {
            await this.output.push({ stream, data, text: decoders[stream].decode(data, { stream: true }) }, data.length);
          }
        }
        if (response.endReason !== EndReason.UNSPECIFIED) {
          exit = {
            executionId,
            pid,
            exitCode: response.exitCode,
            endReason: response.endReason,
            reason: EndReason[response.endReason] ?? String(response.endReason),
            message: response.message,
            outputTruncated: response.outputTruncated,
            sessionEnded: response.sessionEnded,
            durationMs: response.duration
              ? Number(response.duration.seconds) * 1000 + response.duration.nanos / 1e6
              : 0,
          };
          for (const stream of ["stdout", "stderr"] as const) {
            // An incomplete character at the very end: its bytes were delivered, its text is U+FFFD.
            const tail = decoders[stream].decode();
            if (tail) await this.output.push({ stream, data: new Uint8Array(), text: tail }, 0);
          }
          this.output.end();
          // Nothing more to send once the program ended: half-close, so the server ends the call
          // at once (it waits a moment for a client that might still be writing).
          this.requests.end();
        }
      }
      // Read on to the stream's end even after the last message: only then does the transport
      // release the call (and its deadline timer).
      if (exit) return exit;
      throw new FireboxError(Code.Internal, "the Execute stream ended without telling how the program ended");
    } catch (reason) {
      const error = FireboxError.from(reason, this.abort.signal);
      this.output.end(error);
      throw error;
    } finally {
      this.requests.end();
    }
  }

  /** Send bytes (or UTF-8 text) to the program's standard input. Resolves once it is on its way. */
  async write(data: string | Uint8Array): Promise<void> {
    if (this.inputClosed) throw new FireboxError(Code.FailedPrecondition, "standard input is already closed");
    // In pieces: one message of any size would be refused past the server's message limit.
    for (const inputData of pieces(toBytes(data))) {
      await this.requests.push({ inputData }, inputData.length);
    }
  }

  /** End of standard input (the program reads EOF). The call stays open for `stop()`. */
  closeInput(): void {
    if (this.inputClosed) return;
    this.inputClosed = true;
    void this.requests.push({ closeInput: true });
  }

  /** Ask the program to end: "interrupt" (SIGINT, then a kill after a grace period) or "kill". */
  stop(signal: "interrupt" | "kill" = "interrupt"): void {
    void this.requests.push({ stop: signal === "kill" ? StopSignal.KILL : StopSignal.INTERRUPT });
  }

  /** Resize the program's terminal (a `tty` execution): it gets SIGWINCH. */
  resize(rows: number, cols: number): void {
    void this.requests.push({ winsize: { rows, cols } });
  }

  /** Cancel the call; the server kills the program (end reason CANCELLED). */
  cancel(): void {
    this.abort.abort(new FireboxError(Code.Canceled, "cancelled by the client"));
  }

  [Symbol.asyncIterator](): AsyncIterator<Output> {
    return this.output[Symbol.asyncIterator]();
  }

  /** Read all output (each stream up to `maxBytes`, default 16 MiB) and how the program ended. */
  async collect(options: { maxBytes?: number } = {}): Promise<Collected> {
    const maxBytes = options.maxBytes ?? 16 << 20;
    const parts = { stdout: [] as string[], stderr: [] as string[] };
    const sizes = { stdout: 0, stderr: 0 };
    let truncated = false;
    for await (const out of this) {
      if (sizes[out.stream] + out.data.length > maxBytes) {
        truncated = true;
        continue;
      }
      sizes[out.stream] += out.data.length;
      parts[out.stream].push(out.text);
    }
    return { stdout: parts.stdout.join(""), stderr: parts.stderr.join(""), truncated, exit: await this.exit };
  }
}
