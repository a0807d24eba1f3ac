/**
 * The peer side put together: the packet filter's connection events go into the aggregator, every
 * interval the window's events go into the bounded queue, and the queue is pumped into the stream of a
 * FlowClient whenever one is up (and re-pumped every resendAfterMs for unacked events). Acks empty the queue.
 */
import type { flow } from '../proto/index.js';
import { FlowAggregator } from './aggregator.js';
import { FlowClient } from './client.js';
import type { FlowClientOptions, FlowReceiveEnd } from './client.js';
import type { FlowLogger } from './log.js';
import { silentFlowLogger } from './log.js';
import type { FlowConnectionEvent } from './model.js';
import { FlowEventQueue } from './queue.js';
import type { FlowEventQueueStats } from './queue.js';

export interface FlowReporterOptions {
  /** FlowConfig.url / tokenPayload / tokenSignature / interval (ms) / counters. */
  readonly url: string;
  readonly tokenPayload: string;
  readonly tokenSignature: string;
  readonly intervalMs: number;
  readonly counters?: boolean;
  /** Raw 32-byte WireGuard public key of this peer. */
  readonly publicKey: Buffer;
  /** Keep unacked events across a config change by passing the previous reporter's queue. */
  readonly queue?: FlowEventQueue;
  readonly maxQueuedEvents?: number;
  readonly maxFlowsPerWindow?: number;
  /** How often unacked events are checked for re-sending. Default 1000 ms. */
  readonly resendAfterMs?: number;
  readonly logger?: FlowLogger;
  /** Extra FlowClient options (tests: backoff, clock, TLS roots). */
  readonly client?: Partial<Omit<FlowClientOptions, 'url' | 'tokenPayload' | 'tokenSignature' | 'intervalMs'>>;
}

export interface FlowReporterStats extends FlowEventQueueStats {
  /** Connection events lost because a window was full. */
  readonly droppedFlows: number;
  readonly connected: boolean;
  readonly channelsCreated: number;
}

export class FlowReporter {
  readonly client: FlowClient;
  readonly queue: FlowEventQueue;
  readonly aggregator: FlowAggregator;
  /** The receive loop's end (undefined before start()). */
  done: Promise<FlowReceiveEnd | Error> | undefined;
  private readonly opts: FlowReporterOptions;
  private readonly log: FlowLogger;
  private windowTimer: NodeJS.Timeout | undefined;
  private resendTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: FlowReporterOptions) {
    this.opts = opts;
    this.log = opts.logger ?? silentFlowLogger;
    const resendAfterMs = opts.resendAfterMs ?? 1000;
    this.queue = opts.queue ?? new FlowEventQueue({ maxEvents: opts.maxQueuedEvents, resendAfterMs });
    this.aggregator = new FlowAggregator({ publicKey: opts.publicKey, counters: opts.counters, maxFlowsPerWindow: opts.maxFlowsPerWindow });
    this.client = new FlowClient({
      ...opts.client,
      url: opts.url,
      tokenPayload: opts.tokenPayload,
      tokenSignature: opts.tokenSignature,
      intervalMs: opts.intervalMs,
      logger: opts.client?.logger ?? opts.logger,
    });
  }

  /** Starts the stream loop and the window/resend timers. */
  start(): void {
    if (this.done || this.closed) return;
    this.done = this.client
      .receive((ack: flow.FlowEventAck) => this.queue.ack(ack.eventId), {
        onStreamReady: () => {
          this.queue.onReconnect();
          this.pump();
        },
        onStreamWritable: () => this.pump(),
      })
      .catch((err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        this.log.error({ err: e.message }, 'flow reporting stopped');
        return e;
      });
    this.windowTimer = setInterval(() => this.flushWindow(), this.opts.intervalMs);
    this.windowTimer.unref();
    this.resendTimer = setInterval(() => this.pump(), this.opts.resendAfterMs ?? 1000);
    this.resendTimer.unref();
  }

  /** Input from the packet filter. */
  record(ev: FlowConnectionEvent): void {
    if (!this.closed) this.aggregator.add(ev);
  }

  /** Queues an already built event (e.g. from another source). */
  enqueue(ev: flow.FlowEvent): void {
    this.queue.push(ev);
  }

  /** Closes the current window now and sends what is due. */
  flushWindow(): void {
    for (const ev of this.aggregator.closeWindow()) this.queue.push(ev);
    this.pump();
  }

  private pump(): void {
    if (this.closed || !this.client.isReady) return;
    this.queue.pump((ev) => this.client.send(ev));
  }

  stats(): FlowReporterStats {
    return {
      ...this.queue.stats(),
      droppedFlows: this.aggregator.dropped,
      connected: this.client.isReady,
      channelsCreated: this.client.channelsCreated,
    };
  }

  /** Stops at once (never blocks); unacked events stay in `queue` for a successor. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.windowTimer) clearInterval(this.windowTimer);
    if (this.resendTimer) clearInterval(this.resendTimer);
    // The open window goes into the queue, so a successor reporter taking the queue sends it.
    for (const ev of this.aggregator.closeWindow()) this.queue.push(ev);
    this.client.close();
  }
}
