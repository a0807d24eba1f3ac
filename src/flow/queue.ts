/**
 * The sender's store of flow events: bounded, and an event leaves it only when the collector acks it.
 * When the collector is unreachable the queue fills up and then drops its oldest events (counted), so
 * memory stays bounded whatever the outage. Unacked events are sent again after a reconnect, and while
 * connected with a growing delay, but never before they are resendAfterMs (1 s) old since the last send.
 */
import { flow } from '../proto/index.js';

export interface FlowEventQueueOptions {
  /** Events held at most; the oldest go first. Default 10 000. */
  readonly maxEvents?: number;
  /** Minimum time between two sends of one event. Default 1000 ms. */
  readonly resendAfterMs?: number;
  /** The resend delay doubles per attempt up to this. Default 60 s. */
  readonly maxResendAfterMs?: number;
  readonly now?: () => number;
}

export interface FlowEventQueueStats {
  readonly queued: number;
  /** Dropped because the queue was full. */
  readonly dropped: number;
  /** Sends, including re-sends. */
  readonly sent: number;
  readonly resent: number;
  readonly acked: number;
}

interface Entry {
  readonly event: flow.FlowEvent;
  /** When last written to a stream; undefined = never. */
  sentAt: number | undefined;
  /** Sends so far (since the last reconnect). */
  attempts: number;
}

export class FlowEventQueue {
  /** All unacked events in push order (the first is the oldest, dropped first when full). */
  private readonly entries = new Map<string, Entry>();
  /** Keys never sent yet, in push order: sent without scanning the whole queue. */
  private readonly unsent = new Set<string>();
  /** Sent events ordered by their last send (oldest first), so the resend scan stops at the first recent one. */
  private readonly sentOrder = new Map<string, Entry>();
  private readonly maxEvents: number;
  private readonly resendAfterMs: number;
  private readonly maxResendAfterMs: number;
  private readonly now: () => number;
  private dropped = 0;
  private sent = 0;
  private resent = 0;
  private acked = 0;

  constructor(opts: FlowEventQueueOptions = {}) {
    this.maxEvents = Math.max(1, opts.maxEvents ?? 10_000);
    this.resendAfterMs = Math.max(0, opts.resendAfterMs ?? 1000);
    this.maxResendAfterMs = Math.max(this.resendAfterMs, opts.maxResendAfterMs ?? 60_000);
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  stats(): FlowEventQueueStats {
    return { queued: this.entries.size, dropped: this.dropped, sent: this.sent, resent: this.resent, acked: this.acked };
  }

  /** Adds an event (its eventId is the ack key). When full, the oldest event is dropped. */
  push(event: flow.FlowEvent): void {
    const key = event.eventId.toString('hex');
    if (this.entries.has(key)) return;
    while (this.entries.size >= this.maxEvents) {
      // Map iterates in insertion order: the first key is the oldest event.
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.unsent.delete(oldest);
      this.sentOrder.delete(oldest);
      this.dropped++;
    }
    this.entries.set(key, { event, sentAt: undefined, attempts: 0 });
    this.unsent.add(key);
  }

  /** Removes the acked event; false when unknown (a duplicate ack, or dropped meanwhile). */
  ack(eventId: Uint8Array): boolean {
    const key = Buffer.from(eventId.buffer, eventId.byteOffset, eventId.byteLength).toString('hex');
    const ok = this.entries.delete(key);
    this.unsent.delete(key);
    this.sentOrder.delete(key);
    if (ok) this.acked++;
    return ok;
  }

  /** After a new stream is up: everything unacked is due again (once ≥ resendAfterMs since its last send). */
  onReconnect(): void {
    for (const e of this.sentOrder.values()) if (e.attempts > 1) e.attempts = 1;
  }

  /** When a sent entry may be sent again. */
  private dueAt(e: Entry): number {
    if (e.sentAt === undefined) return Number.NEGATIVE_INFINITY;
    return e.sentAt + Math.min(this.resendAfterMs * 2 ** Math.max(0, e.attempts - 1), this.maxResendAfterMs);
  }

  /**
   * Sends every due event, oldest first, through `send`; stops early when `send` returns false (stream
   * buffer full) or throws (no stream). Returns how many were sent.
   */
  pump(send: (event: flow.FlowEvent) => boolean): number {
    const now = this.now();
    let n = 0;
    /** true: sent, go on; false: sent, stream buffer full; undefined: not sent. */
    const sendOne = (key: string, e: Entry): boolean | undefined => {
      let more: boolean;
      try {
        more = send(e.event);
      } catch {
        return undefined;
      }
      if (e.sentAt !== undefined) this.resent++;
      e.sentAt = now;
      e.attempts++;
      this.sent++;
      n++;
      this.sentOrder.delete(key);
      this.sentOrder.set(key, e);
      return more;
    };
    // Re-sends first, least recently sent first. Sends happen at non-decreasing times, so sentOrder is
    // ordered by sentAt: the scan ends at the first event sent less than resendAfterMs ago.
    const due: Array<[string, Entry]> = [];
    for (const [key, e] of this.sentOrder) {
      if (now - (e.sentAt ?? now) < this.resendAfterMs) break;
      if (this.dueAt(e) <= now) due.push([key, e]);
    }
    for (const [key, e] of due) {
      if (sendOne(key, e) !== true) return n;
    }
    for (const key of this.unsent) {
      const more = sendOne(key, this.entries.get(key)!);
      if (more === undefined) break;
      this.unsent.delete(key);
      if (!more) break;
    }
    return n;
  }
}
