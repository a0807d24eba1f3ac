/** Data shapes shared by the flow sender, receiver and store. */
import { randomBytes } from 'node:crypto';
import { bytesToIp } from '../shared/index.js';
import { flow } from '../proto/index.js';

export type FlowEventType = 'start' | 'end' | 'drop';
export type FlowDirection = 'ingress' | 'egress';

/**
 * One connection event as the packet filter reports it (the sender's input). Counters are the totals
 * the filter tracked for this connection since its previous report (deltas), zero when not counted.
 */
export interface FlowConnectionEvent {
  readonly type: FlowEventType;
  /** 16-byte connection ID; start and end of one connection share it. */
  readonly flowId: Buffer;
  /** FirewallRule.PolicyID bytes of the rule that allowed/denied, if any. */
  readonly ruleId?: Buffer;
  readonly direction: FlowDirection;
  /** IP protocol number. */
  readonly protocol: number;
  /** Raw 4- or 16-byte addresses. */
  readonly srcIp: Buffer;
  readonly dstIp: Buffer;
  readonly srcPort?: number;
  readonly dstPort?: number;
  readonly icmpType?: number;
  readonly icmpCode?: number;
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Resource IDs (peer/route/resource) when the filter knows them. */
  readonly sourceResourceId?: Buffer;
  readonly destResourceId?: Buffer;
  /** When it happened (ms since epoch); defaults to the time it is reported. */
  readonly timestampMs?: number;
}

/** Numeric values of the wire enums (flow.Type / flow.Direction). */
export const FLOW_TYPE_NUMBER: Readonly<Record<FlowEventType, number>> = { start: 1, end: 2, drop: 3 };
export const FLOW_DIRECTION_NUMBER: Readonly<Record<FlowDirection, number>> = { ingress: 1, egress: 2 };

export function flowTypeFromNumber(n: number): FlowEventType | undefined {
  return n === 1 ? 'start' : n === 2 ? 'end' : n === 3 ? 'drop' : undefined;
}
export function flowDirectionFromNumber(n: number): FlowDirection | undefined {
  return n === 1 ? 'ingress' : n === 2 ? 'egress' : undefined;
}

/** ICMP and ICMPv6 carry type/code instead of ports (protocol.md §8). */
export function isIcmpProtocol(protocol: number): boolean {
  return protocol === 1 || protocol === 58;
}

/** 16 random bytes: an event or flow UUID (version 4 bits set, as a UUID generator would). */
export function newFlowUuid(): Buffer {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

/** 16 bytes as canonical UUID text; other lengths as hex. */
export function uuidToString(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  if (b.length !== 16) return h;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function msToTimestamp(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function timestampToMs(t: { seconds: number; nanos: number } | undefined): number | undefined {
  if (!t) return undefined;
  return t.seconds * 1000 + Math.floor(t.nanos / 1e6);
}

/**
 * A received event as the store keeps it: the wire event flattened, with the reporter's identity
 * (resolved by the receiver's host, e.g. Management) and the server's receive time.
 */
export interface FlowEventRecord {
  /** Hex of the 16-byte event_id (idempotency key). */
  readonly eventId: string;
  /** Base64 WireGuard public key of the reporting peer. */
  readonly reporterKey: string;
  readonly reporterId: string | null;
  readonly accountId: string | null;
  readonly userId: string | null;
  readonly flowId: string;
  readonly type: FlowEventType | null;
  readonly ruleId: string | null;
  readonly direction: FlowDirection | null;
  readonly protocol: number;
  readonly sourceIp: string;
  readonly destIp: string;
  readonly sourcePort: number | null;
  readonly destPort: number | null;
  readonly icmpType: number | null;
  readonly icmpCode: number | null;
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly sourceResourceId: string | null;
  readonly destResourceId: string | null;
  readonly numOfStarts: number;
  readonly numOfEnds: number;
  readonly numOfDrops: number;
  /** ms since epoch. */
  readonly timestamp: number;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly receivedAt: number;
}

/** Who a reporting peer is, as the receiver's host knows it. */
export interface FlowReporterIdentity {
  readonly peerId?: string;
  readonly accountId?: string;
  readonly userId?: string;
}

export class FlowEventInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowEventInvalidError';
  }
}

function ipText(b: Buffer): string {
  if (b.length === 0) return '';
  if (b.length !== 4 && b.length !== 16) throw new FlowEventInvalidError(`IP address of ${b.length} bytes`);
  return bytesToIp(b);
}

/** Bytes that are an ID string (PolicyID, resource IDs) as text; other bytes as hex. */
function idText(b: Buffer): string | null {
  if (b.length === 0) return null;
  for (const c of b) if (c < 0x20 || c > 0x7e) return b.toString('hex');
  return b.toString('utf8');
}

/** Flattens a wire event for storage; throws FlowEventInvalidError on events that cannot be stored. */
export function flowEventToRecord(ev: flow.FlowEvent, receivedAt: number, who: FlowReporterIdentity = {}): FlowEventRecord {
  if (ev.eventId.length === 0 || ev.eventId.length > 64) throw new FlowEventInvalidError('event_id must be 1..64 bytes');
  if (ev.publicKey.length !== 32) throw new FlowEventInvalidError('public_key must be a 32-byte WireGuard key');
  const f = ev.flowFields ?? flow.FlowFields.fromPartial({});
  const timestamp = timestampToMs(ev.timestamp) ?? receivedAt;
  return {
    eventId: ev.eventId.toString('hex'),
    reporterKey: ev.publicKey.toString('base64'),
    reporterId: who.peerId ?? null,
    accountId: who.accountId ?? null,
    userId: who.userId ?? null,
    flowId: uuidToString(f.flowId),
    type: flowTypeFromNumber(f.type) ?? null,
    ruleId: idText(f.ruleId),
    direction: flowDirectionFromNumber(f.direction) ?? null,
    protocol: f.protocol,
    sourceIp: ipText(f.sourceIp),
    destIp: ipText(f.destIp),
    sourcePort: f.portInfo ? f.portInfo.sourcePort : null,
    destPort: f.portInfo ? f.portInfo.destPort : null,
    icmpType: f.icmpInfo ? f.icmpInfo.icmpType : null,
    icmpCode: f.icmpInfo ? f.icmpInfo.icmpCode : null,
    rxPackets: f.rxPackets,
    txPackets: f.txPackets,
    rxBytes: f.rxBytes,
    txBytes: f.txBytes,
    sourceResourceId: idText(f.sourceResourceId),
    destResourceId: idText(f.destResourceId),
    numOfStarts: f.numOfStarts,
    numOfEnds: f.numOfEnds,
    numOfDrops: f.numOfDrops,
    timestamp,
    windowStart: timestampToMs(ev.windowStart) ?? timestamp,
    windowEnd: timestampToMs(ev.windowEnd) ?? timestamp,
    receivedAt,
  };
}
