/**
 * The REST face of stored flow events: GET /api/events/network-traffic query parsing and the JSON shape
 * of NetBird's NetworkTrafficEvent / NetworkTrafficEventsResponse (management-api.md).
 */
import type { FlowEventRecord, FlowEventType } from './model.js';
import type { FlowEventPage, FlowEventQuery } from './store.js';
import { FLOW_QUERY_DEFAULT_PAGE_SIZE, FLOW_QUERY_MAX_PAGE_SIZE } from './store.js';

export interface NetworkTrafficLocation {
  city_name: string;
  country_code: string;
}
export interface NetworkTrafficEndpoint {
  id: string;
  type: string;
  name: string;
  geo_location: NetworkTrafficLocation;
  os: string;
  address: string;
  dns_label: string;
}
export interface NetworkTrafficUser {
  id: string;
  email: string;
  name: string;
}
export interface NetworkTrafficPolicy {
  id: string;
  name: string;
}
export interface NetworkTrafficICMP {
  type: number;
  code: number;
}
export interface NetworkTrafficSubEvent {
  type: string;
  timestamp: string;
}
export interface NetworkTrafficEvent {
  flow_id: string;
  reporter_id: string;
  source: NetworkTrafficEndpoint;
  destination: NetworkTrafficEndpoint;
  user: NetworkTrafficUser;
  policy: NetworkTrafficPolicy;
  icmp: NetworkTrafficICMP;
  protocol: number;
  direction: string;
  rx_bytes: number;
  rx_packets: number;
  tx_bytes: number;
  tx_packets: number;
  num_of_starts: number;
  num_of_ends: number;
  num_of_drops: number;
  window_start: string;
  window_end: string;
  events: NetworkTrafficSubEvent[];
}
export interface NetworkTrafficEventsResponse {
  data: NetworkTrafficEvent[];
  page: number;
  page_size: number;
  total_records: number;
  total_pages: number;
}

/** What the REST layer knows about an endpoint (a peer or resource); every field optional. */
export interface FlowEndpointInfo {
  readonly id?: string;
  /** e.g. PEER, HOST_RESOURCE, SUBNET_RESOURCE, DOMAIN_RESOURCE, UNKNOWN. */
  readonly type?: string;
  readonly name?: string;
  readonly os?: string;
  readonly dnsLabel?: string;
  readonly cityName?: string;
  readonly countryCode?: string;
}

/**
 * Lookups the REST layer supplies to fill names (all optional). `endpoint` gets the stored resource ID
 * (may be null) and the address, so it can find a peer by its overlay IP when no ID was reported.
 */
export interface FlowEventDirectory {
  endpoint?(resourceId: string | null, ip: string): FlowEndpointInfo | undefined;
  user?(userId: string): { email?: string; name?: string } | undefined;
  policy?(policyId: string): { name?: string } | undefined;
  reporter?(record: FlowEventRecord): string | undefined;
}

const TYPE_NAME: Readonly<Record<FlowEventType, string>> = { start: 'TYPE_START', end: 'TYPE_END', drop: 'TYPE_DROP' };
const TYPE_FROM_NAME: Readonly<Record<string, FlowEventType>> = {
  TYPE_START: 'start',
  TYPE_END: 'end',
  TYPE_DROP: 'drop',
  START: 'start',
  END: 'end',
  DROP: 'drop',
};

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function hostPort(ip: string, port: number | null): string {
  if (port === null || port === 0) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function endpoint(dir: FlowEventDirectory | undefined, resourceId: string | null, ip: string, port: number | null): NetworkTrafficEndpoint {
  const info = dir?.endpoint?.(resourceId, ip) ?? {};
  return {
    id: info.id ?? resourceId ?? '',
    type: info.type ?? 'UNKNOWN',
    name: info.name ?? '',
    geo_location: { city_name: info.cityName ?? '', country_code: info.countryCode ?? '' },
    os: info.os ?? '',
    address: hostPort(ip, port),
    dns_label: info.dnsLabel ?? '',
  };
}

/** One stored event as NetBird's NetworkTrafficEvent JSON. */
export function toNetworkTrafficEvent(r: FlowEventRecord, dir?: FlowEventDirectory): NetworkTrafficEvent {
  const user = r.userId ? dir?.user?.(r.userId) : undefined;
  const policy = r.ruleId ? dir?.policy?.(r.ruleId) : undefined;
  // Sub-events: the reported type at the event time, plus the other kinds the window aggregated.
  const events: NetworkTrafficSubEvent[] = [];
  const add = (t: FlowEventType, at: number): void => {
    if (!events.some((e) => e.type === TYPE_NAME[t])) events.push({ type: TYPE_NAME[t], timestamp: iso(at) });
  };
  if (r.type) add(r.type, r.timestamp);
  if (r.numOfStarts > 0) add('start', r.windowStart);
  if (r.numOfEnds > 0) add('end', r.windowEnd);
  if (r.numOfDrops > 0) add('drop', r.windowEnd);
  events.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
  return {
    flow_id: r.flowId,
    reporter_id: dir?.reporter?.(r) ?? r.reporterId ?? r.reporterKey,
    source: endpoint(dir, r.sourceResourceId, r.sourceIp, r.sourcePort),
    destination: endpoint(dir, r.destResourceId, r.destIp, r.destPort),
    user: { id: r.userId ?? '', email: user?.email ?? '', name: user?.name ?? '' },
    policy: { id: r.ruleId ?? '', name: policy?.name ?? '' },
    icmp: { type: r.icmpType ?? 0, code: r.icmpCode ?? 0 },
    protocol: r.protocol,
    direction: r.direction === 'ingress' ? 'INGRESS' : r.direction === 'egress' ? 'EGRESS' : 'DIRECTION_UNKNOWN',
    rx_bytes: r.rxBytes,
    rx_packets: r.rxPackets,
    tx_bytes: r.txBytes,
    tx_packets: r.txPackets,
    num_of_starts: r.numOfStarts,
    num_of_ends: r.numOfEnds,
    num_of_drops: r.numOfDrops,
    window_start: iso(r.windowStart),
    window_end: iso(r.windowEnd),
    events,
  };
}

/** A query result page as NetworkTrafficEventsResponse JSON. */
export function toNetworkTrafficEventsResponse(p: FlowEventPage, dir?: FlowEventDirectory): NetworkTrafficEventsResponse {
  return {
    data: p.data.map((r) => toNetworkTrafficEvent(r, dir)),
    page: p.page,
    page_size: p.pageSize,
    total_records: p.totalRecords,
    total_pages: p.totalPages,
  };
}

/** A bad query parameter; the REST layer answers 400 (or 422) with this message. */
export class FlowQueryError extends Error {
  readonly status = 400;
  constructor(message: string) {
    super(message);
    this.name = 'FlowQueryError';
  }
}

type QueryValue = string | string[] | undefined;

function one(params: Readonly<Record<string, QueryValue>>, name: string): string | undefined {
  const v = params[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

function intParam(params: Readonly<Record<string, QueryValue>>, name: string, min: number, max: number): number | undefined {
  const s = one(params, name);
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) throw new FlowQueryError(`${name} must be an integer from ${min} to ${max}, got "${s}"`);
  return Number(s);
}

function dateParam(params: Readonly<Record<string, QueryValue>>, name: string): number | undefined {
  const s = one(params, name);
  if (s === undefined) return undefined;
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new FlowQueryError(`${name} must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z, got "${s}"`);
  return ms;
}

/**
 * Parses the query string of GET /api/events/network-traffic (page, page_size, user_id, reporter_id,
 * source_id, destination_id, protocol, type, direction, search, start_date, end_date). The caller adds
 * accountId. `connection_type` is accepted and ignored: we do not record whether a flow was P2P or routed.
 */
export function parseNetworkTrafficQuery(params: Readonly<Record<string, QueryValue>>): FlowEventQuery {
  const typeText = one(params, 'type');
  let type: FlowEventType | undefined;
  if (typeText !== undefined) {
    type = TYPE_FROM_NAME[typeText.toUpperCase()];
    if (!type) throw new FlowQueryError(`type must be TYPE_START, TYPE_END or TYPE_DROP, got "${typeText}"`);
  }
  const dirText = one(params, 'direction');
  let direction: 'ingress' | 'egress' | undefined;
  if (dirText !== undefined) {
    const d = dirText.toUpperCase();
    if (d === 'INGRESS') direction = 'ingress';
    else if (d === 'EGRESS') direction = 'egress';
    else throw new FlowQueryError(`direction must be INGRESS or EGRESS, got "${dirText}"`);
  }
  const startDate = dateParam(params, 'start_date');
  const endDate = dateParam(params, 'end_date');
  if (startDate !== undefined && endDate !== undefined && startDate > endDate) {
    throw new FlowQueryError('start_date must not be after end_date');
  }
  const q: {
    -readonly [K in keyof FlowEventQuery]: FlowEventQuery[K];
  } = {
    page: intParam(params, 'page', 1, Number.MAX_SAFE_INTEGER) ?? 1,
    pageSize: intParam(params, 'page_size', 1, FLOW_QUERY_MAX_PAGE_SIZE) ?? FLOW_QUERY_DEFAULT_PAGE_SIZE,
  };
  const userId = one(params, 'user_id');
  if (userId !== undefined) q.userId = userId;
  const reporter = one(params, 'reporter_id');
  if (reporter !== undefined) q.peer = reporter;
  const sourceId = one(params, 'source_id');
  if (sourceId !== undefined) q.sourceId = sourceId;
  const destinationId = one(params, 'destination_id');
  if (destinationId !== undefined) q.destinationId = destinationId;
  const protocol = intParam(params, 'protocol', 0, 255);
  if (protocol !== undefined) q.protocol = protocol;
  if (type !== undefined) q.type = type;
  if (direction !== undefined) q.direction = direction;
  const search = one(params, 'search');
  if (search !== undefined) q.search = search;
  if (startDate !== undefined) q.startDate = startDate;
  if (endDate !== undefined) q.endDate = endDate;
  return q;
}
