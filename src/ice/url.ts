/** STUN/TURN URIs as Management distributes them (protocol.md §9.1; RFC 7064, RFC 7065). */

export interface IceUrl {
  scheme: 'stun' | 'stuns' | 'turn' | 'turns';
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** stuns/turns (TLS/DTLS): not supported by this agent, skipped when gathering. */
  secure: boolean;
}

export class IceUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IceUrlError';
  }
}

/** "stun:host[:port]", "turn:host[:port][?transport=udp|tcp]", IPv6 hosts in brackets. */
export function parseIceUrl(url: string): IceUrl {
  const m = /^(stuns?|turns?):(\[[^\]]+\]|[^:?/\[\]]+)(?::(\d{1,5}))?(?:\?(.*))?$/i.exec(url.trim());
  if (!m) throw new IceUrlError(`"${url}" is not a STUN/TURN URI (expected e.g. stun:stun.example.com:3478 or turn:turn.example.com:3478?transport=udp)`);
  const scheme = m[1]!.toLowerCase() as IceUrl['scheme'];
  const secure = scheme === 'stuns' || scheme === 'turns';
  const host = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
  const port = m[3] !== undefined ? Number(m[3]) : secure ? 5349 : 3478;
  if (port < 1 || port > 65535) throw new IceUrlError(`bad port in "${url}"`);
  let transport: 'udp' | 'tcp' = secure && scheme === 'turns' ? 'tcp' : 'udp';
  if (m[4] !== undefined) {
    if (scheme === 'stun' || scheme === 'stuns') throw new IceUrlError(`"${url}": STUN URIs take no query`);
    const t = /^transport=(udp|tcp)$/i.exec(m[4]);
    if (!t) throw new IceUrlError(`"${url}": the only query is transport=udp|tcp`);
    transport = t[1]!.toLowerCase() as 'udp' | 'tcp';
  }
  return { scheme, host, port, transport, secure };
}
