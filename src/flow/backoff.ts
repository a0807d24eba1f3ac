/**
 * Exponential backoff with jitter, with an injectable clock and random source so that its timing can be
 * tested exactly. Semantics follow the classic "exponential backoff" recipe that NetBird's flow client
 * uses: each step returns the current interval randomised by ±randomization, then grows the interval by
 * `multiplier` up to `maxIntervalMs`; once `maxElapsedMs` has passed since the last reset it gives up.
 */
export interface BackoffOptions {
  /** First interval (before randomisation). */
  readonly initialMs: number;
  /** Growth factor per step. */
  readonly multiplier: number;
  /** Jitter: each delay is drawn uniformly from [cur·(1−r), cur·(1+r)]. */
  readonly randomization: number;
  /** Cap of the (un-randomised) interval. */
  readonly maxIntervalMs: number;
  /** Give up once this much time has passed since the last reset. */
  readonly maxElapsedMs: number;
}

/** Three months, as NetBird's flow client: the client keeps trying for as long as it runs, practically. */
export const FLOW_BACKOFF_MAX_ELAPSED_MS = 3 * 30 * 24 * 3600 * 1000;

/** The flow client's backoff for a given flow interval (NetBird's values). */
export function flowBackoffOptions(flowIntervalMs: number): BackoffOptions {
  return {
    initialMs: 800,
    multiplier: 1.7,
    randomization: 0.5,
    maxIntervalMs: Math.max(1, flowIntervalMs / 2),
    maxElapsedMs: FLOW_BACKOFF_MAX_ELAPSED_MS,
  };
}

export class ExponentialBackoff {
  private current: number;
  private startedAt: number;

  constructor(
    readonly options: BackoffOptions,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.current = Math.min(options.initialMs, options.maxIntervalMs);
    this.startedAt = now();
  }

  /** Back to the initial interval, and the elapsed-time budget starts again. */
  reset(): void {
    this.current = Math.min(this.options.initialMs, this.options.maxIntervalMs);
    this.startedAt = this.now();
  }

  /** The un-randomised interval the next step will be drawn around. */
  get currentIntervalMs(): number {
    return this.current;
  }

  /** Time since the last reset (or construction). */
  get elapsedMs(): number {
    return this.now() - this.startedAt;
  }

  /** The next delay in ms, or null when the elapsed-time budget is used up. */
  next(): number | null {
    if (this.elapsedMs > this.options.maxElapsedMs) return null;
    const r = this.options.randomization;
    const delta = r * this.current;
    const delay = this.current - delta + this.random() * 2 * delta;
    this.current = Math.min(this.current * this.options.multiplier, this.options.maxIntervalMs);
    return delay;
  }
}
