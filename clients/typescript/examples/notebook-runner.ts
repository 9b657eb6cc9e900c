/**
 * A notebook-cell runner, the way an editor extension (a VS Code notebook controller) would build
 * one on @firebox/client.
 *
 * - A notebook gets a workspace and one shell session: `cd`, variables and functions carry from
 *   cell to cell, as in a kernel.
 * - Cells run one at a time, in the order they were asked for (a session runs one command at a
 *   time; the editor queues the rest, as Jupyter does).
 * - Each cell is sent with its id and name (RunMe's known_id / known_name), so the training log can
 *   join what the person ran to what a model suggested.
 * - Output reaches the cell as it is printed; the editor's stop button interrupts; text typed
 *   into the cell's input box goes to the program's stdin.
 *
 * Run it against a running executor:
 *
 *     FIREBOX_EXECUTOR=127.0.0.1:50051 FIREBOX_AUTH_TOKEN=… node dist-examples/examples/notebook-runner.js
 */
import { createExecutorClient, type ExecutorClient, type Exit } from "@firebox/client";

export interface Cell {
  /** The editor's stable id for the cell, and the name the person gave it. */
  id: string;
  name?: string;
  source: string;
}

/** Where a cell's output goes: in an editor, NotebookCellExecution.appendOutput. */
export interface CellSink {
  output(stream: "stdout" | "stderr", text: string): void;
}

/** One cell's execution, as the editor holds it while it runs. */
export interface CellRun {
  /** The stop button: SIGINT, then a kill if the program ignores it. */
  stop(): void;
  /** Text typed into the cell's input box, sent to the program's standard input. */
  input(text: string): Promise<void>;
  /** End of input (Ctrl-D). */
  endInput(): void;
  /** How it ended. */
  done: Promise<Exit>;
}

export class NotebookKernel {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly executor: ExecutorClient,
    readonly workspaceId: string,
    readonly sessionId: string,
    private readonly ownsWorkspace: boolean,
  ) {}

  /** A kernel for one notebook: a new workspace (or `workspaceId`'s) and a shell session in it. */
  static async open(
    executor: ExecutorClient,
    options: { notebook: string; workspaceId?: string },
  ): Promise<NotebookKernel> {
    const workspaceId =
      options.workspaceId ?? (await executor.workspaces.create({ labels: { notebook: options.notebook } })).id;
    const session = await executor.sessions.create(workspaceId);
    return new NotebookKernel(executor, workspaceId, session.id, options.workspaceId === undefined);
  }

  /** Queue a cell; it starts when the cells queued before it have ended. */
  run(cell: Cell, sink: CellSink): CellRun {
    let started!: (run: ReturnType<ExecutorClient["execute"]>) => void;
    const execution = new Promise<ReturnType<ExecutorClient["execute"]>>((resolve) => (started = resolve));
    let stopped = false;
    const done = this.queue.then(async () => {
      const run = this.executor.execute({
        workspaceId: this.workspaceId,
        sessionId: this.sessionId,
        script: cell.source,
        knownId: cell.id,
        knownName: cell.name ?? "",
      });
      started(run);
      if (stopped) run.stop();
      for await (const out of run) sink.output(out.stream, out.text);
      return run.exit;
    });
    // The next cell waits for this one to end, however it ends.
    this.queue = done.catch(() => {});
    return {
      stop: () => {
        stopped = true; // a queued cell that is stopped stops as soon as it starts
        void execution.then((run) => run.stop());
      },
      input: async (text) => (await execution).write(text),
      endInput: () => void execution.then((run) => run.closeInput()),
      done,
    };
  }

  /** Closing the notebook: its shell session ends, and a workspace the kernel made is deleted. */
  async close(): Promise<void> {
    await this.queue;
    await this.executor.sessions.close(this.sessionId);
    if (this.ownsWorkspace) await this.executor.workspaces.delete(this.workspaceId);
  }
}

/** A terminal stand-in for the editor: three cells, the second reading input, the third stopped. */
async function main(): Promise<void> {
  const executor = createExecutorClient({
    address: process.env.FIREBOX_EXECUTOR ?? "127.0.0.1:50051",
    token: process.env.FIREBOX_AUTH_TOKEN,
  });
  const kernel = await NotebookKernel.open(executor, { notebook: "example.ipynb" });
  const print = (cell: string) => ({
    output: (stream: "stdout" | "stderr", text: string) =>
      process.stdout.write(text.replace(/^(?=.)/gm, `[${cell} ${stream}] `)),
  });
  try {
    const setup = kernel.run({ id: "cell-1", name: "setup", source: "cd /tmp && export GREETING=hello" }, print("setup"));
    const ask = kernel.run({ id: "cell-2", name: "ask", source: 'read name; echo "$GREETING, $name, from $PWD"' }, print("ask"));
    // The person presses stop once the third tick shows.
    const loop: CellRun = kernel.run(
      { id: "cell-3", name: "loop", source: "for i in 1 2 3; do echo tick $i; sleep 0.2; done; sleep 60" },
      {
        output: (stream, text) => {
          print("loop").output(stream, text);
          if (text.includes("tick 3")) loop.stop();
        },
      },
    );
    await ask.input("notebook\n");
    console.log(`setup: ${(await setup.done).reason}`);
    console.log(`ask: exit ${(await ask.done).exitCode}`);
    console.log(`loop: ${(await loop.done).reason}`);
  } finally {
    await kernel.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    console.error(String(error));
    process.exit(1);
  });
}
