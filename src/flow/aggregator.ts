/**
 * Aggregation of the packet filter's connection events into one FlowEvent per flow and window: start,
 * end and drop counts add up in num_of_*, counters add up, and the event carries the latest type seen.
 * Drops are keyed by their 5-tuple and rule (a dropped packet rarely has a meaningful connection ID), the
 * rest by connection ID and direction. The number of flows per window is bounded; extra ones are counted
 * and dropped, so a flood costs bounded memory.
 */
import { flow } from '../proto/index.js';
import type { FlowConnectionEvent, FlowEventType } from './model.js';
import { FLOW_DIRECTION_NUMBER, FLOW_TYPE_NUMBER, isIcmpProtocol, msToTimestamp, newFlowUuid } from './model.js';

export interface FlowAggregatorOptions {
  /** Raw 32-byte WireGuard public key of this peer. */
  readonly publicKey: Buffer;
  /** Report packet/byte counters (FlowConfig.counters). Default true. */
  readonly counters?: boolean;
  /** Flows kept per window. Default 10 000. */
  readonly maxFlowsPerWindow?: number;
  readonly now?: () => number;
}

interface Aggregate {
  readonly first: FlowConnectionEvent;
  type: FlowEventType;
  lastAt: number;
  starts: number;
  ends: number;
  drops: number;
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

function keyOf(ev: FlowConnectionEvent): string {
  if (ev.type !== 'drop') return `c${ev.flowId.toString('hex')}/${ev.direction}`;
  const ports = isIcmpProtocol(ev.protocol) ? `${ev.icmpType ?? 0}.${ev.icmpCode ?? 0}` : `${ev.srcPort ?? 0}.${ev.dstPort ?? 0}`;
  return `d${ev.direction}/${ev.protocol}/${ev.srcIp.toString('hex')}/${ev.dstIp.toString('hex')}/${ports}/${ev.ruleId?.toString('hex') ?? ''}`;
}

export class FlowAggregator {
  private flows = new Map<string, Aggregate>();
  private windowStart: number;
  private readonly publicKey: Buffer;
  private readonly counters: boolean;
  private readonly maxFlows: number;
  private readonly now: () => number;
  private droppedFlows = 0;

  constructor(opts: FlowAggregatorOptions) {
    if (opts.publicKey.length !== 32) throw new Error('flow aggregator needs the raw 32-byte WireGuard public key');
    this.publicKey = Buffer.from(opts.publicKey);
    this.counters = opts.counters ?? true;
    this.maxFlows = Math.max(1, opts.maxFlowsPerWindow ?? 10_000);
    this.now = opts.now ?? Date.now;
    this.windowStart = this.now();
  }

  /** Flows in the open window. */
  get size(): number {
    return this.flows.size;
  }

  /** Connection events not aggregated because the window was full. */
  get dropped(): number {
    return this.droppedFlows;
  }

  add(ev: FlowConnectionEvent): void {
    const key = keyOf(ev);
    let a = this.flows.get(key);
    const at = ev.timestampMs ?? this.now();
    if (!a) {
      if (this.flows.size >= this.maxFlows) {
        this.droppedFlows++;
        return;
      }
      a = { first: ev, type: ev.type, lastAt: at, starts: 0, ends: 0, drops: 0, rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0 };
      this.flows.set(key, a);
    }
    if (at >= a.lastAt) {
      a.type = ev.type;
      a.lastAt = at;
    }
    if (ev.type === 'start') a.starts++;
    else if (ev.type === 'end') a.ends++;
    else a.drops++;
    a.rxPackets += ev.rxPackets;
    a.txPackets += ev.txPackets;
    a.rxBytes += ev.rxBytes;
    a.txBytes += ev.txBytes;
  }

  /** Ends the open window: one FlowEvent per flow in it (fresh event IDs); the next window starts now. */
  closeWindow(): flow.FlowEvent[] {
    const end = this.now();
    const start = this.windowStart;
    this.windowStart = end;
    const flows = this.flows;
    this.flows = new Map();
    const out: flow.FlowEvent[] = [];
    for (const a of flows.values()) {
      const f = a.first;
      const icmp = isIcmpProtocol(f.protocol);
      out.push({
        eventId: newFlowUuid(),
        timestamp: msToTimestamp(a.lastAt),
        publicKey: this.publicKey,
        isInitiator: false,
        windowStart: msToTimestamp(start),
        windowEnd: msToTimestamp(end),
        flowFields: {
          flowId: Buffer.from(f.flowId),
          type: FLOW_TYPE_NUMBER[a.type] as flow.Type,
          ruleId: f.ruleId ? Buffer.from(f.ruleId) : Buffer.alloc(0),
          direction: FLOW_DIRECTION_NUMBER[f.direction] as flow.Direction,
          protocol: f.protocol,
          sourceIp: Buffer.from(f.srcIp),
          destIp: Buffer.from(f.dstIp),
          portInfo: icmp ? undefined : { sourcePort: f.srcPort ?? 0, destPort: f.dstPort ?? 0 },
          icmpInfo: icmp ? { icmpType: f.icmpType ?? 0, icmpCode: f.icmpCode ?? 0 } : undefined,
          rxPackets: this.counters ? a.rxPackets : 0,
          txPackets: this.counters ? a.txPackets : 0,
          rxBytes: this.counters ? a.rxBytes : 0,
          txBytes: this.counters ? a.txBytes : 0,
          sourceResourceId: f.sourceResourceId ? Buffer.from(f.sourceResourceId) : Buffer.alloc(0),
          destResourceId: f.destResourceId ? Buffer.from(f.destResourceId) : Buffer.alloc(0),
          numOfStarts: a.starts,
          numOfEnds: a.ends,
          numOfDrops: a.drops,
        },
      });
    }
    return out;
  }
}
