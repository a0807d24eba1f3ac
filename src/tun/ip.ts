import { execFile } from 'node:child_process';

/** Runs `ip [-n netns] args...`; rejects with ip's own error text. */
export function ipCmd(args: readonly string[], netns?: string): Promise<string> {
  const full = netns ? ['-n', netns, ...args] : [...args];
  return new Promise((resolve, reject) => {
    execFile('ip', full, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') reject(new Error('`ip` not found: install iproute2'));
        else reject(new Error(`ip ${full.join(' ')}: ${stderr.trim() || err.message}`));
      } else resolve(stdout);
    });
  });
}

/** "10.0.0.1/24" -> 4, "fd00::1/64" -> 6; throws on anything else. */
export function cidrFamily(cidr: string): 4 | 6 {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(cidr.trim());
  if (!m) throw new Error(`not a CIDR address: "${cidr}"`);
  const addr = m[1]!;
  const bits = m[2] === undefined ? undefined : Number(m[2]);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(addr) && addr.split('.').every((o) => Number(o) <= 255)) {
    if (bits !== undefined && bits > 32) throw new Error(`bad prefix length in "${cidr}"`);
    return 4;
  }
  if (addr.includes(':') && /^[0-9a-fA-F:.]+$/.test(addr)) {
    if (bits !== undefined && bits > 128) throw new Error(`bad prefix length in "${cidr}"`);
    return 6;
  }
  throw new Error(`not a CIDR address: "${cidr}"`);
}

/** Adds an address to a device. IPv6 with `nodad` so it is usable at once. */
export async function addAddress(dev: string, cidr: string, netns?: string): Promise<void> {
  const fam = cidrFamily(cidr);
  await ipCmd(fam === 6 ? ['-6', 'addr', 'add', cidr, 'dev', dev, 'nodad'] : ['addr', 'add', cidr, 'dev', dev], netns);
}

/** Routes `cidr` into `dev` (replace: idempotent). */
export async function addRoute(dev: string, cidr: string, netns?: string): Promise<void> {
  const fam = cidrFamily(cidr);
  await ipCmd([fam === 6 ? '-6' : '-4', 'route', 'replace', cidr, 'dev', dev], netns);
}

export async function delRoute(dev: string, cidr: string, netns?: string): Promise<void> {
  const fam = cidrFamily(cidr);
  await ipCmd([fam === 6 ? '-6' : '-4', 'route', 'del', cidr, 'dev', dev], netns);
}
