/**
 * Points the host's resolver at our DNS server and puts it back afterwards.
 *
 * With systemd-resolved running we configure only our interface (`resolvectl dns/domain`), which
 * resolved reverts by itself when the interface goes away. Otherwise /etc/resolv.conf is
 * replaced; the original (file bytes and mode, or symlink target) is kept in a backup file so a
 * crashed daemon's successor can still restore it.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import net from 'node:net';
import { management } from '../proto/index.js';
import { normalizeName } from './zones.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}
export type CommandRunner = (cmd: string, args: string[]) => Promise<CommandResult>;

export interface HostDnsOptions {
  /** Our resolver's address (the overlay IP). */
  serverIp: string;
  /** Search domains (added to the search list; also routed to us under resolved). */
  domains: string[];
  /** Domains routed to us without becoming search domains (resolved only; resolv.conf routes everything). */
  matchDomains?: string[];
  /** Route every query to us (a primary nameserver group exists, or we forward to the host resolvers). */
  routeAll?: boolean;
  interfaceName: string;
}

export interface HostDnsEnv {
  /** Default /etc/resolv.conf. */
  resolvConfPath?: string;
  /** Default `${resolvConfPath}.netbird.bak`. */
  backupPath?: string;
  /** Runs resolvectl/systemctl; injectable for tests. */
  run?: CommandRunner;
  /** Force a mode instead of detecting systemd-resolved. */
  mode?: 'auto' | 'resolved' | 'file';
}

export interface HostDnsResult {
  mode: 'resolved' | 'file';
  /** Nameservers of the original resolv.conf (forward targets for names we do not own). */
  originalNameservers: string[];
}

interface Backup {
  kind: 'file' | 'symlink' | 'absent';
  /** base64 of the original bytes (kind 'file'). */
  content?: string;
  mode?: number;
  /** Link target (kind 'symlink'). */
  target?: string;
}

interface AppliedState {
  mode: 'resolved' | 'file';
  interfaceName: string;
}

const defaultRun: CommandRunner = (cmd, args) => new Promise((resolve) => {
  execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
    const code = err === null ? 0 : typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 127;
    resolve({ code, stdout: String(stdout), stderr: String(stderr) });
  });
});

/** Nameserver addresses listed in resolv.conf text. */
export function parseNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && net.isIP(m[1]!.split('%')[0]!) !== 0) out.push(m[1]!);
  }
  return out;
}

function parseDirective(text: string, word: 'search' | 'options'): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = new RegExp(`^\\s*${word}\\s+(.*)$`).exec(line);
    if (m) out.push(...m[1]!.trim().split(/\s+/).filter(Boolean));
  }
  return out;
}

export class HostDns {
  private readonly path: string;
  private readonly backupPath: string;
  private readonly run: CommandRunner;
  private readonly mode: 'auto' | 'resolved' | 'file';
  private applied: AppliedState | undefined;

  constructor(env: HostDnsEnv = {}) {
    this.path = env.resolvConfPath ?? '/etc/resolv.conf';
    this.backupPath = env.backupPath ?? `${this.path}.netbird.bak`;
    this.run = env.run ?? defaultRun;
    this.mode = env.mode ?? 'auto';
  }

  /** Whether systemd-resolved is running (and resolvectl usable). */
  async resolvedActive(): Promise<boolean> {
    const r = await this.run('systemctl', ['is-active', '--quiet', 'systemd-resolved']);
    return r.code === 0;
  }

  async apply(opts: HostDnsOptions): Promise<HostDnsResult> {
    if (net.isIP(opts.serverIp) === 0) throw new Error(`DNS server address ${JSON.stringify(opts.serverIp)} is not an IP address`);
    const domains = [...new Set(opts.domains.map(normalizeName).filter((d) => d !== ''))];
    const useResolved = this.mode === 'resolved' || (this.mode === 'auto' && await this.resolvedActive());
    const original = await this.originalText();
    const originalNameservers = parseNameservers(original ?? '');
    if (useResolved) {
      const ifc = opts.interfaceName;
      await this.mustRun('resolvectl', ['dns', ifc, opts.serverIp]);
      const match = [...new Set((opts.matchDomains ?? []).map(normalizeName).filter((d) => d !== '' && !domains.includes(d)))];
      const routing = [...domains, ...match.map((d) => `~${d}`), ...(opts.routeAll ? ['~.'] : [])];
      await this.mustRun('resolvectl', ['domain', ifc, ...(routing.length > 0 ? routing : [''])]);
      await this.mustRun('resolvectl', ['default-route', ifc, opts.routeAll ? 'true' : 'false']);
      this.applied = { mode: 'resolved', interfaceName: ifc };
      return { mode: 'resolved', originalNameservers };
    }
    await this.saveBackup();
    const search = [...new Set([...domains, ...parseDirective(original ?? '', 'search')])];
    const options = parseDirective(original ?? '', 'options');
    const lines = [
      '# Generated by NetBird. The original is kept in ' + this.backupPath + ' and restored on exit.',
      `nameserver ${opts.serverIp}`,
      ...(search.length > 0 ? [`search ${search.join(' ')}`] : []),
      ...(options.length > 0 ? [`options ${options.join(' ')}`] : []),
      '',
    ];
    await this.replaceWithFile(lines.join('\n'), 0o644);
    this.applied = { mode: 'file', interfaceName: opts.interfaceName };
    return { mode: 'file', originalNameservers };
  }

  /**
   * Undoes apply(). Also restores a backup left behind by a previous run that died, so calling
   * it at start-up is safe. Returns whether anything was restored.
   */
  async restore(): Promise<boolean> {
    const applied = this.applied;
    this.applied = undefined;
    if (applied?.mode === 'resolved') {
      await this.run('resolvectl', ['revert', applied.interfaceName]);
      return true;
    }
    let raw: string;
    try { raw = await fs.readFile(this.backupPath, 'utf8'); } catch { return false; }
    const b = JSON.parse(raw) as Backup;
    if (b.kind === 'symlink' && b.target !== undefined) {
      const tmp = `${this.path}.netbird.tmp`;
      await fs.rm(tmp, { force: true });
      await fs.symlink(b.target, tmp);
      await fs.rename(tmp, this.path);
    } else if (b.kind === 'file' && b.content !== undefined) {
      await this.replaceWithFile(Buffer.from(b.content, 'base64'), b.mode ?? 0o644);
    } else if (b.kind === 'absent') {
      await fs.rm(this.path, { force: true });
    }
    await fs.rm(this.backupPath, { force: true });
    return true;
  }

  /** The resolv.conf text from before our change (the backup if one exists). */
  private async originalText(): Promise<string | undefined> {
    try {
      const b = JSON.parse(await fs.readFile(this.backupPath, 'utf8')) as Backup;
      if (b.kind === 'file' && b.content !== undefined) return Buffer.from(b.content, 'base64').toString('utf8');
      if (b.kind === 'symlink' && b.target !== undefined) {
        return await fs.readFile(b.target.startsWith('/') ? b.target : `${dirname(this.path)}/${b.target}`, 'utf8').catch(() => undefined);
      }
      return undefined;
    } catch { /* no backup yet */ }
    return fs.readFile(this.path, 'utf8').catch(() => undefined);
  }

  private async saveBackup(): Promise<void> {
    // Never overwrite an existing backup: it holds the true original (the current file may be ours).
    try { await fs.access(this.backupPath); return; } catch { /* none yet */ }
    let backup: Backup;
    try {
      const st = await fs.lstat(this.path);
      if (st.isSymbolicLink()) backup = { kind: 'symlink', target: await fs.readlink(this.path) };
      else backup = { kind: 'file', content: (await fs.readFile(this.path)).toString('base64'), mode: st.mode & 0o7777 };
    } catch {
      backup = { kind: 'absent' };
    }
    const tmp = `${this.backupPath}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(backup), { mode: 0o600 });
    await fs.rename(tmp, this.backupPath);
  }

  /** Atomically replaces the path (even a symlink) with a regular file. */
  private async replaceWithFile(content: string | Buffer, mode: number): Promise<void> {
    const tmp = `${this.path}.netbird.tmp`;
    await fs.writeFile(tmp, content, { mode });
    await fs.chmod(tmp, mode);
    try {
      await fs.rename(tmp, this.path);
    } catch (e) {
      // A bind-mounted resolv.conf (containers) cannot be replaced, only rewritten in place.
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e;
      await fs.writeFile(this.path, content);
      await fs.rm(tmp, { force: true });
    }
  }

  private async mustRun(cmd: string, args: string[]): Promise<void> {
    const r = await this.run(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
}

const defaultHost = new Map<string, HostDns>();

function hostFor(env: HostDnsEnv): HostDns {
  const key = env.resolvConfPath ?? '/etc/resolv.conf';
  let h = defaultHost.get(key);
  if (h === undefined) { h = new HostDns(env); defaultHost.set(key, h); }
  return h;
}

/** Points the host resolver at `serverIp` (resolved per-interface when running, else resolv.conf). */
export function applyHostDns(opts: HostDnsOptions, env: HostDnsEnv = {}): Promise<HostDnsResult> {
  return hostFor(env).apply(opts);
}

/** Restores what applyHostDns changed (or a backup left by a crashed run). */
export function restoreHostDns(env: HostDnsEnv = {}): Promise<boolean> {
  return hostFor(env).restore();
}

export interface HostDnsSettings {
  /** Search domains: custom zones unless SearchDomainDisabled, plus groups with SearchDomainsEnabled. */
  domains: string[];
  /** Every name we answer or route: all zones, all match domains, reverse zones of the overlay. */
  matchDomains: string[];
  /** A primary nameserver group exists: all queries should come to us. */
  routeAll: boolean;
}

/** Reverse-lookup zone covering a prefix, rounded out to a label boundary. */
export function reverseZoneOf(prefix: string): string | undefined {
  const [addr, lenText] = prefix.split('/') as [string, string | undefined];
  const v = net.isIP(addr);
  if (v === 0) return undefined;
  const len = lenText === undefined ? (v === 4 ? 32 : 128) : Number(lenText);
  if (v === 4) {
    const octets = addr.split('.').slice(0, Math.floor(len / 8));
    return [...octets.reverse(), 'in-addr', 'arpa'].join('.');
  }
  const groups = addr.split('::');
  const head = groups[0] ? groups[0].split(':') : [];
  const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
  const full = [...head, ...new Array<string>(8 - head.length - tail.length).fill('0'), ...tail].map((g) => g.padStart(4, '0')).join('');
  const nibbles = full.slice(0, Math.floor(len / 4)).split('');
  return [...nibbles.reverse(), 'ip6', 'arpa'].join('.');
}

/** What to hand applyHostDns for a DNSConfig. */
export function hostDnsSettings(cfg: management.DNSConfig, reversePrefixes: readonly string[] = []): HostDnsSettings {
  const domains = new Set<string>();
  const match = new Set<string>();
  for (const z of cfg.CustomZones) {
    const d = normalizeName(z.Domain);
    if (d === '') continue;
    match.add(d);
    if (!z.SearchDomainDisabled) domains.add(d);
  }
  let routeAll = false;
  for (const g of cfg.NameServerGroups) {
    if (g.NameServers.length === 0) continue;
    if (g.Primary) routeAll = true;
    for (const raw of g.Domains) {
      const d = normalizeName(raw);
      if (d === '') continue;
      match.add(d);
      if (g.SearchDomainsEnabled) domains.add(d);
    }
  }
  if (cfg.CustomZones.length > 0) {
    for (const p of reversePrefixes) {
      const z = reverseZoneOf(p);
      if (z !== undefined) match.add(z);
    }
  }
  return { domains: [...domains], matchDomains: [...match], routeAll };
}
