/**
 * Client of a flow collector (FlowService.Events), with the reconnect behaviour of NetBird's fixed flow
 * client:
 * - a call never waits for the channel to become ready (waitForReady off): an unreachable collector fails
 *   the attempt at once with UNAVAILABLE, so our backoff alone decides when to try again;
 * - local cancellation (AbortSignal), the local deadline and close() end the receive loop at once and for
 *   good, while CANCELLED / DEADLINE_EXCEEDED statuses that come from the server or a proxy are retried;
 * - every retryable failure throws the channel away (new grpc Client, own subchannel pool, so a new HTTP/2
 *   connection), so grpc's own reconnect backoff never competes with ours and a corrupt connection (e.g.
 *   after RST_STREAM PROTOCOL_ERROR) is never reused;
 * - backoff 800 ms ×1.7 ±50 %, at most interval/2, for up to 3 months; it is reset only when the stream
 *   that failed had lived at least 5 s, so a collector that accepts and drops streams at once is not
 *   hammered;
 * - one receive loop at a time; close() never blocks and no reconnect starts after it;
 * - a stream whose setup fails halfway (initiator sent, no headers) is cancelled.
 */
import * as grpc from '@grpc/grpc-js';
import { flow } from '../proto/index.js';
import { ExponentialBackoff, flowBackoffOptions } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import type { FlowLogger } from './log.js';
import { silentFlowLogger } from './log.js';
import { parseFlowTarget } from './target.js';
import { flowAuthorizationValue } from './token.js';

export class FlowClientClosedError extends Error {
  constructor() {
    super('flow client is closed');
    this.name = 'FlowClientClosedError';
  }
}
export class FlowClientBusyError extends Error {
  constructor() {
    super('a flow receive loop is already running on this client; close it or wait for it to end');
    this.name = 'FlowClientBusyError';
  }
}
export class FlowStreamNotReadyError extends Error {
  constructor() {
    super('flow stream is not established; the event stays queued until the stream is up');
    this.name = 'FlowStreamNotReadyError';
  }
}
export class FlowRetryExhaustedError extends Error {
  constructor(readonly lastError: Error) {
    super(`flow collector unreachable for too long, giving up: ${lastError.message}`);
    this.name = 'FlowRetryExhaustedError';
  }
}
/** A stream ended without a gRPC error status (the receiver closed it, or sent no headers). */
export class FlowStreamEndedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowStreamEndedError';
  }
}

export interface FlowClientOptions {
  /** FlowConfig.url: "https://host:port" (TLS) or "http://host:port". */
  readonly url: string;
  readonly tokenPayload: string;
  readonly tokenSignature: string;
  /** FlowConfig.interval in ms; the backoff's max interval is half of it. */
  readonly intervalMs: number;
  readonly logger?: FlowLogger;
  /** Overrides of the backoff parameters (tests). */
  readonly backoff?: Partial<BackoffOptions>;
  /** A stream must have lived this long for its failure to reset the backoff. Default 5000 ms. */
  readonly resetAfterMs?: number;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Extra CA certificates for TLS (tests, private CAs); default: the system roots. */
  readonly rootCerts?: Buffer;
  /** Extra grpc channel options. */
  readonly channelOptions?: grpc.ChannelOptions;
}

export interface FlowReceiveOptions {
  /** Aborting ends the loop at once, for good. */
  readonly signal?: AbortSignal;
  /** Absolute deadline (ms since epoch or Date): the loop ends then, for good. */
  readonly deadline?: number | Date;
  /** Called each time a stream is established (headers received): the moment to (re)send unacked events. */
  readonly onStreamReady?: () => void;
  /** Called when the stream's write buffer has drained after send() returned false: send more now. */
  readonly onStreamWritable?: () => void;
  /** Called when an established or half-established stream fails, before the backoff wait. */
  readonly onStreamLost?: (err: Error, retryInMs: number | null) => void;
}

/** Why a receive loop ended (it only rejects on FlowClientBusyError or FlowRetryExhaustedError). */
export type FlowReceiveEnd = 'closed' | 'aborted' | 'deadline';

type EventsCall = grpc.ClientDuplexStream<flow.FlowEvent, flow.FlowEventAck>;

interface StreamResult {
  readonly error: Error;
  readonly livedMs: number;
  readonly established: boolean;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export class FlowClient {
  /** grpc target ("host:port", IPv6 in brackets). */
  readonly target: string;
  readonly tls: boolean;
  private readonly opts: FlowClientOptions;
  private readonly log: FlowLogger;
  private readonly now: () => number;
  private readonly authorization: string;
  private client: flow.FlowServiceClient | undefined;
  private call: EventsCall | undefined;
  private ready = false;
  private closed = false;
  private loopStop: AbortController | undefined;
  private channels = 0;

  constructor(opts: FlowClientOptions) {
    const t = parseFlowTarget(opts.url);
    this.target = t.target;
    this.tls = t.tls;
    this.opts = opts;
    this.log = opts.logger ?? silentFlowLogger;
    this.now = opts.now ?? Date.now;
    this.authorization = flowAuthorizationValue({ payload: opts.tokenPayload, signature: opts.tokenSignature });
  }

  /** How many grpc channels (HTTP/2 connections) this client has created. */
  get channelsCreated(): number {
    return this.channels;
  }

  /** True while a stream is established and send() can be used. */
  get isReady(): boolean {
    return this.ready && !this.closed;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private channel(): flow.FlowServiceClient {
    if (!this.client) {
      const creds = this.tls ? grpc.credentials.createSsl(this.opts.rootCerts ?? null) : grpc.credentials.createInsecure();
      this.client = new flow.FlowServiceClient(this.target, creds, {
        // Own subchannel pool: a new Client really means a new HTTP/2 connection, never a shared old one.
        'grpc.use_local_subchannel_pool': 1,
        // Our backoff owns retries.
        'grpc.enable_retries': 0,
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.client_idle_timeout_ms': Math.max(1000, this.opts.intervalMs * 2),
        ...this.opts.channelOptions,
      });
      this.channels++;
    }
    return this.client;
  }

  private dropChannel(): void {
    const c = this.client;
    this.client = undefined;
    c?.close();
  }

  /**
   * Sends one event on the established stream. Returns false when the stream's buffer is full (wait for the
   * next stream-ready/interval before sending more). Throws FlowStreamNotReadyError without a stream.
   */
  send(event: flow.FlowEvent): boolean {
    const call = this.call;
    if (!this.ready || !call || this.closed) throw new FlowStreamNotReadyError();
    return call.write(event);
  }

  /**
   * Runs the receive loop: opens the stream, hands every ack (initiator acks skipped) to `onAck`, and
   * reconnects with backoff whenever the stream fails. Resolves when stopped locally.
   */
  async receive(onAck: (ack: flow.FlowEventAck) => void, ro: FlowReceiveOptions = {}): Promise<FlowReceiveEnd> {
    if (this.closed) return 'closed';
    if (this.loopStop) throw new FlowClientBusyError();
    const stop = new AbortController();
    this.loopStop = stop;
    const onSignal = (): void => stop.abort('aborted');
    let deadlineTimer: NodeJS.Timeout | undefined;
    try {
      if (ro.signal?.aborted) return 'aborted';
      ro.signal?.addEventListener('abort', onSignal, { once: true });
      if (ro.deadline !== undefined) {
        const at = typeof ro.deadline === 'number' ? ro.deadline : ro.deadline.getTime();
        const left = at - this.now();
        if (left <= 0) return 'deadline';
        deadlineTimer = setTimeout(() => stop.abort('deadline'), left);
      }
      const backoff = new ExponentialBackoff({ ...flowBackoffOptions(this.opts.intervalMs), ...this.opts.backoff }, this.now, this.opts.random);
      const resetAfter = this.opts.resetAfterMs ?? 5000;
      for (;;) {
        if (stop.signal.aborted) return stop.signal.reason as FlowReceiveEnd;
        const r = await this.runStream(onAck, stop.signal, ro);
        if (stop.signal.aborted) return stop.signal.reason as FlowReceiveEnd;
        // Fresh connection for the next attempt, whatever failed.
        this.dropChannel();
        if (r.livedMs >= resetAfter) backoff.reset();
        const delay = backoff.next();
        this.log.warn({ err: r.error.message, established: r.established, livedMs: r.livedMs, retryInMs: delay }, 'flow stream failed');
        this.callback(ro.onStreamLost && (() => ro.onStreamLost!(r.error, delay)));
        if (delay === null) throw new FlowRetryExhaustedError(r.error);
        await sleep(delay, stop.signal);
      }
    } finally {
      if (deadlineTimer) clearTimeout(deadlineTimer);
      ro.signal?.removeEventListener('abort', onSignal);
      if (this.loopStop === stop) this.loopStop = undefined;
      this.cancelCall();
      // A stopped loop leaves no connection behind; a later receive() starts on a new one.
      this.dropChannel();
    }
  }

  /** Runs a caller's callback; its failure is logged, never allowed to break the loop. */
  private callback(fn: (() => void) | undefined): void {
    if (!fn) return;
    try {
      fn();
    } catch (err) {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'flow client callback failed');
    }
  }

  private cancelCall(): void {
    const call = this.call;
    this.call = undefined;
    this.ready = false;
    call?.cancel();
  }

  /** One stream: setup (initiator + headers), then acks until it fails. Resolves with why it ended. */
  private runStream(onAck: (ack: flow.FlowEventAck) => void, stop: AbortSignal, ro: FlowReceiveOptions): Promise<StreamResult> {
    return new Promise<StreamResult>((resolve) => {
      if (this.closed) return resolve({ error: new FlowClientClosedError(), livedMs: 0, established: false });
      // waitForReady off (the default, spelled out): fail fast with UNAVAILABLE instead of queueing.
      const md = new grpc.Metadata({ waitForReady: false });
      md.set('authorization', this.authorization);
      let call: EventsCall;
      try {
        call = this.channel().events(md);
      } catch (err) {
        return resolve({ error: err instanceof Error ? err : new Error(String(err)), livedMs: 0, established: false });
      }
      this.call = call;
      this.ready = false;
      let establishedAt: number | undefined;
      let settled = false;
      const done = (error: Error): void => {
        if (settled) return;
        settled = true;
        stop.removeEventListener('abort', onStop);
        if (this.call === call) {
          this.call = undefined;
          this.ready = false;
        }
        // Whatever state it is in (also half set up), this stream is finished for us.
        call.cancel();
        resolve({ error, livedMs: establishedAt === undefined ? 0 : this.now() - establishedAt, established: establishedAt !== undefined });
      };
      const onStop = (): void => done(new Error(`flow receive loop stopped (${String(stop.reason)})`));
      stop.addEventListener('abort', onStop, { once: true });

      call.on('metadata', (headers: grpc.Metadata) => {
        if (settled) return;
        // NetBird's client insists on at least one response header.
        if (Object.keys(headers.getMap()).length === 0) {
          done(new FlowStreamEndedError('flow receiver sent no response headers'));
          return;
        }
        establishedAt = this.now();
        this.ready = true;
        this.log.info({ target: this.target }, 'flow stream established');
        this.callback(ro.onStreamReady);
      });
      call.on('data', (ack: flow.FlowEventAck) => {
        if (settled || ack.isInitiator) return;
        try {
          onAck(ack);
        } catch (err) {
          done(new Error(`flow ack handler failed: ${err instanceof Error ? err.message : String(err)}`));
        }
      });
      call.on('drain', () => {
        if (!settled && this.ready) this.callback(ro.onStreamWritable);
      });
      // Non-OK statuses arrive as 'error' (a ServiceError carrying code and details).
      call.on('error', (err: Error) => done(err));
      call.on('status', (s: grpc.StatusObject) => {
        if (s.code === grpc.status.OK) done(new FlowStreamEndedError('flow receiver closed the stream'));
      });
      call.write({
        eventId: Buffer.alloc(0),
        timestamp: undefined,
        publicKey: Buffer.alloc(0),
        flowFields: undefined,
        isInitiator: true,
        windowStart: undefined,
        windowEnd: undefined,
      });
    });
  }

  /** Stops everything without waiting: the receive loop returns 'closed', no reconnect follows. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.loopStop?.abort('closed');
    this.cancelCall();
    this.dropChannel();
  }
}
