/**
 * Managed DNS for the client (protocol.md §4.6.5): a resolver on the overlay address that answers
 * the account's custom zones, synthesizes PTR records for peers and forwards everything else, plus
 * host integration that points the system resolver at it and restores it afterwards.
 */
export { DnsServer } from './server.js';
export type { DnsServerOptions, DnsConfigOptions, DnsServerStats, DnsLogger } from './server.js';
export type { Upstream } from './upstream.js';
export { HostDns, applyHostDns, restoreHostDns, parseNameservers, hostDnsSettings, reverseZoneOf } from './host.js';
export type { HostDnsOptions, HostDnsEnv, HostDnsResult, HostDnsSettings, CommandRunner, CommandResult } from './host.js';
export { normalizeName, reverseName } from './zones.js';
