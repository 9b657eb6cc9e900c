/**
 * A bounded single-consumer queue: producers `await push()` and are held while more than
 * `capacity` units are buffered, so a slow reader slows the writer instead of growing memory.
 */
export class Channel<T> implements AsyncIterable<T> {
  private readonly items: { item: T; size: number }[] = [];
  private buffered = 0;
  private ended = false;
  private failure: unknown = undefined;
  private wakeReader: (() => void) | undefined;
  private readonly wakeWriters: (() => void)[] = [];
  private iterated = false;

  constructor(
    private readonly capacity: number,
    /** Called when the consumer stops early (a `break` out of `for await`). */
    private readonly onAbandon: () => void = () => {},
  ) {}

  get isEnded(): boolean {
    return this.ended;
  }

  /** Add an item; resolves once the buffer is back under capacity (or the channel ended). */
  async push(item: T, size = 1): Promise<void> {
    if (this.ended) return;
    this.items.push({ item, size });
    this.buffered += size;
    this.wakeReader?.();
    while (this.buffered > this.capacity && !this.ended) {
      await new Promise<void>((resolve) => this.wakeWriters.push(resolve));
    }
  }

  /** No more items; the consumer sees `error` (after the buffered items) if one is given. */
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.wakeReader?.();
    this.releaseWriters();
  }

  private releaseWriters(): void {
    for (const wake of this.wakeWriters.splice(0)) wake();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    if (this.iterated) throw new TypeError("this stream can be iterated only once");
    this.iterated = true;
    try {
      for (;;) {
        const head = this.items.shift();
        if (head) {
          this.buffered -= head.size;
          if (this.buffered <= this.capacity) this.releaseWriters();
          yield head.item;
          continue;
        }
        if (this.ended) {
          if (this.failure !== undefined) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wakeReader = resolve));
        this.wakeReader = undefined;
      }
    } finally {
      // The consumer left early (break, return, throw): drop what is buffered and say so.
      if (!this.ended) {
        this.items.length = 0;
        this.buffered = 0;
        this.end();
        this.onAbandon();
      }
    }
  }
}

/** An abort of our own that also follows the caller's signals. AbortSignal.any holds those only
 * weakly, so a long-lived caller signal reused for many calls gathers no listeners. */
export interface LinkedAbort {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}

export function linkedAbort(...signals: (AbortSignal | undefined)[]): LinkedAbort {
  const own = new AbortController();
  const signal = AbortSignal.any([own.signal, ...signals.filter((s): s is AbortSignal => s !== undefined)]);
  return { signal, abort: (reason) => own.abort(reason) };
}
