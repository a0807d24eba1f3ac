import { parseKey } from '../crypto/index.js';
import { cidrFamily } from '../tun/index.js';

/** A parsed wg-quick style configuration (the subset we use). */
export interface WgQuickConfig {
  interface: {
    privateKey: string;
    /** CIDR addresses, e.g. "10.0.0.1/24", "fd00::1/64". */
    addresses: string[];
    listenPort: number | undefined;
    mtu: number | undefined;
  };
  peers: WgQuickPeer[];
  /** Keys we read but do not act on (DNS, PostUp, ...), for a warning. */
  ignored: string[];
}

export interface WgQuickPeer {
  publicKey: string;
  presharedKey: string | undefined;
  allowedIps: string[];
  /** "host:port" or "[v6]:port" as written (host may be a name). */
  endpoint: string | undefined;
  persistentKeepalive: number | undefined;
  /** Line of the [Peer] header, for messages. */
  line: number;
}

export class WgQuickConfigError extends Error {
  override readonly name = 'WgQuickConfigError';
  constructor(readonly file: string, readonly line: number, message: string) {
    super(line > 0 ? `${file}:${line}: ${message}` : `${file}: ${message}`);
  }
}

const IGNORED = new Set(['dns', 'table', 'preup', 'postup', 'predown', 'postdown', 'saveconfig', 'fwmark']);

function list(v: string): string[] {
  return v.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function checkCidr(s: string, requirePrefix: boolean): string {
  cidrFamily(s); // throws with a readable message
  if (requirePrefix && !s.includes('/')) return s + (s.includes(':') ? '/128' : '/32');
  return s;
}

function intIn(v: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`${what} must be a whole number ${min}..${max}, got "${v}"`);
  return Number(v);
}

/** Checks "host:port" / "[v6]:port" syntax (the host may be a DNS name). */
function checkEndpoint(v: string): string {
  const m = /^\[([0-9a-fA-F:.%\w]+)\]:(\d+)$/.exec(v) ?? /^([^:\s[\]]+):(\d+)$/.exec(v);
  if (!m) throw new Error(`Endpoint must be host:port or [ipv6]:port, got "${v}"`);
  intIn(m[2]!, 1, 65535, 'Endpoint port');
  return v;
}

/**
 * Parses wg-quick(8) configuration text. Throws WgQuickConfigError naming the
 * file and line of the first problem.
 */
export function parseWgQuickConfig(text: string, file = 'config'): WgQuickConfig {
  let section: 'none' | 'interface' | 'peer' = 'none';
  let iface: Partial<WgQuickConfig['interface']> & { addresses: string[]; line?: number } | undefined;
  const peers: (Partial<WgQuickPeer> & { allowedIps: string[]; line: number })[] = [];
  const ignored: string[] = [];
  const seen = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const ln = i + 1;
    const raw = lines[i]!;
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') continue;
    const sec = /^\[(\w+)\]$/.exec(line);
    if (sec) {
      const name = sec[1]!.toLowerCase();
      seen.clear();
      if (name === 'interface') {
        if (iface) throw new WgQuickConfigError(file, ln, 'second [Interface] section');
        iface = { addresses: [], line: ln };
        section = 'interface';
      } else if (name === 'peer') {
        peers.push({ allowedIps: [], line: ln });
        section = 'peer';
      } else throw new WgQuickConfigError(file, ln, `unknown section [${sec[1]}] (expected [Interface] or [Peer])`);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new WgQuickConfigError(file, ln, `expected "Key = Value" or a [Section], got "${line}"`);
    const key = line.slice(0, eq).trim();
    const k = key.toLowerCase();
    const value = line.slice(eq + 1).trim();
    if (section === 'none') throw new WgQuickConfigError(file, ln, `"${key}" outside a section: put it under [Interface] or [Peer]`);
    const multi = k === 'address' || k === 'allowedips' || k === 'dns';
    if (!multi && seen.has(k)) throw new WgQuickConfigError(file, ln, `${key} given twice in this section`);
    seen.add(k);
    try {
      if (section === 'interface') {
        const f = iface!;
        switch (k) {
          case 'privatekey': parseKey(value, 'PrivateKey'); f.privateKey = value; break;
          case 'address': for (const a of list(value)) f.addresses.push(checkCidr(a, true)); break;
          case 'listenport': f.listenPort = intIn(value, 0, 65535, 'ListenPort'); break;
          case 'mtu': f.mtu = intIn(value, 576, 65535, 'MTU'); break;
          default:
            if (IGNORED.has(k)) ignored.push(key);
            else throw new Error(`unknown key "${key}" in [Interface] (known: PrivateKey, Address, ListenPort, MTU)`);
        }
      } else {
        const p = peers[peers.length - 1]!;
        switch (k) {
          case 'publickey': parseKey(value, 'PublicKey'); p.publicKey = value; break;
          case 'presharedkey': parseKey(value, 'PresharedKey'); p.presharedKey = value; break;
          case 'allowedips': for (const a of list(value)) p.allowedIps.push(checkCidr(a, true)); break;
          case 'endpoint': p.endpoint = checkEndpoint(value); break;
          case 'persistentkeepalive': p.persistentKeepalive = value === 'off' ? 0 : intIn(value, 0, 65535, 'PersistentKeepalive'); break;
          default: throw new Error(`unknown key "${key}" in [Peer] (known: PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive)`);
        }
      }
    } catch (e) {
      throw new WgQuickConfigError(file, ln, (e as Error).message);
    }
  }
  if (!iface) throw new WgQuickConfigError(file, 0, 'no [Interface] section');
  if (!iface.privateKey) throw new WgQuickConfigError(file, iface.line ?? 0, '[Interface] has no PrivateKey (create one with `wg genkey`)');
  const keys = new Set<string>();
  const outPeers: WgQuickPeer[] = peers.map((p) => {
    if (!p.publicKey) throw new WgQuickConfigError(file, p.line, '[Peer] has no PublicKey');
    if (keys.has(p.publicKey)) throw new WgQuickConfigError(file, p.line, `peer ${p.publicKey} listed twice`);
    keys.add(p.publicKey);
    return {
      publicKey: p.publicKey,
      presharedKey: p.presharedKey,
      allowedIps: p.allowedIps,
      endpoint: p.endpoint,
      persistentKeepalive: p.persistentKeepalive,
      line: p.line,
    };
  });
  return {
    interface: { privateKey: iface.privateKey, addresses: iface.addresses, listenPort: iface.listenPort, mtu: iface.mtu },
    peers: outPeers,
    ignored,
  };
}
