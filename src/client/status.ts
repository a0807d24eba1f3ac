/**
 * The `netbird status --json` document. Field names follow NetBird's so existing scripts keep working.
 */
export type PeerConnStatus = 'Connected' | 'Connecting' | 'Idle';

export interface PeerStatusJson {
  fqdn: string;
  netbirdIp: string;
  publicKey: string;
  status: PeerConnStatus;
  statusSince: string;
  connectionType: '' | 'P2P' | 'Relayed';
  iceCandidateType: { local: string; remote: string };
  iceCandidateEndpoint: { local: string; remote: string };
  relayAddress: string;
  lastWireguardHandshake: string;
  transferReceived: number;
  transferSent: number;
  /** Go time.Duration semantics: nanoseconds. */
  latency: number;
  quantumResistance: boolean;
  networks: string[];
}

export interface ServiceStatusJson {
  url: string;
  connected: boolean;
  error: string;
}

export interface StatusJson {
  peers: { total: number; connected: number; details: PeerStatusJson[] };
  cliVersion: string;
  daemonVersion: string;
  daemonStatus: string;
  management: ServiceStatusJson;
  signal: ServiceStatusJson;
  relays: { total: number; available: number; details: { uri: string; available: boolean; error: string }[] };
  netbirdIp: string;
  publicKey: string;
  usesKernelInterface: boolean;
  fqdn: string;
  quantumResistance: boolean;
  networks: string[];
  dnsServers: { servers: string[]; domains: string[]; enabled: boolean; error: string }[];
}

/** Go's zero time, which NetBird prints for "never". */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function timeOrZero(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : ZERO_TIME;
}

function ago(iso: string, now: number): string {
  if (iso === ZERO_TIME) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes, ${s % 60} seconds ago`;
  return `${Math.floor(s / 3600)} hours, ${Math.floor((s % 3600) / 60)} minutes ago`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function svc(s: ServiceStatusJson): string {
  return s.connected ? 'Connected' : s.error ? `Disconnected, reason: ${s.error}` : 'Disconnected';
}

/** Human-readable status, short or detailed (-d). */
export function formatStatus(st: StatusJson, detailed: boolean, now = Date.now()): string {
  const lines: string[] = [];
  if (detailed) {
    lines.push('Peers detail:');
    for (const p of st.peers.details) {
      lines.push(` ${p.fqdn || p.publicKey}:`);
      lines.push(`  NetBird IP: ${p.netbirdIp}`);
      lines.push(`  Public key: ${p.publicKey}`);
      lines.push(`  Status: ${p.status}`);
      lines.push('  -- detail --');
      lines.push(`  Connection type: ${p.connectionType || '-'}`);
      lines.push(`  ICE candidate (Local/Remote): ${p.iceCandidateType.local || '-'}/${p.iceCandidateType.remote || '-'}`);
      lines.push(`  ICE candidate endpoints (Local/Remote): ${p.iceCandidateEndpoint.local || '-'}/${p.iceCandidateEndpoint.remote || '-'}`);
      lines.push(`  Relay server address: ${p.relayAddress || '-'}`);
      lines.push(`  Last connection update: ${ago(p.statusSince, now)}`);
      lines.push(`  Last WireGuard handshake: ${ago(p.lastWireguardHandshake, now)}`);
      lines.push(`  Transfer status (received/sent) ${bytes(p.transferReceived)}/${bytes(p.transferSent)}`);
      lines.push(`  Latency: ${p.latency > 0 ? `${(p.latency / 1e6).toFixed(3)}ms` : '-'}`);
      lines.push('');
    }
  }
  lines.push(`Daemon version: ${st.daemonVersion}`);
  lines.push(`CLI version: ${st.cliVersion}`);
  lines.push(`Daemon status: ${st.daemonStatus}`);
  lines.push(`Management: ${svc(st.management)}${detailed && st.management.url ? ` to ${st.management.url}` : ''}`);
  lines.push(`Signal: ${svc(st.signal)}${detailed && st.signal.url ? ` to ${st.signal.url}` : ''}`);
  lines.push(`Relays: ${st.relays.available}/${st.relays.total} Available`);
  if (detailed) for (const r of st.relays.details) lines.push(`  [${r.uri}] is ${r.available ? 'Available' : `Unavailable, reason: ${r.error || 'unknown'}`}`);
  lines.push(`FQDN: ${st.fqdn || '-'}`);
  lines.push(`NetBird IP: ${st.netbirdIp || '-'}`);
  lines.push(`Interface type: Userspace`);
  lines.push(`Peers count: ${st.peers.connected}/${st.peers.total} Connected`);
  return lines.join('\n') + '\n';
}
