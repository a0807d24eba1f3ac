/**
 * A full ICE agent (RFC 8445) for one remote peer, wire-compatible with the
 * Pion ICE agent official NetBird clients run: trickled candidates, checks
 * from the shared WireGuard socket (host/srflx) and from TURN allocations
 * (relay), regular nomination by the controlling side, keepalive requests on
 * the selected pair and disconnected/failed timeouts.
 *
 * Host and server-reflexive candidates share one base (the socket), so they
 * are checked as one local base; which of them the remote saw is learned from
 * the mapped address of the answers.
 */
import { EventEmitter } from 'node:events';
import { randomBytes, randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { StunAttr, StunClass, StunMethod, decodeStun, decodeXorAddress, decodeAddress, encodeStun, getAttr } from '../stun/index.js';
import type { Endpoint } from '../wireguard/index.js';
import {
  candidateFoundation,
  candidatePriority,
  formatCandidate,
  hasLiteralAddress,
  pairPriority,
  parseCandidate,
  type Candidate,
  type CandidateType,
} from './candidate.js';
import { buildCheckError, buildCheckRequest, buildCheckSuccess, parseCheckRequest, parseCheckResponse, transactionKey } from './checks.js';
import type { IceBase, IceMux, StunSink } from './mux.js';
import { TurnRelay } from './turn.js';
import { parseIceUrl } from './url.js';
import { interfacesIn } from './netwatch.js';

export type IceState = 'new' | 'checking' | 'connected' | 'disconnected' | 'failed' | 'closed';

export interface IceServer {
  /** RFC 7064/7065 URI: "stun:host:port", "turn:host:port?transport=udp". */
  url: string;
  username?: string;
  password?: string;
}

export interface IceLogger {
  debug(msg: string): void;
}

export interface IceAgentOptions {
  /** The shared WireGuard socket. */
  mux: IceMux;
  /** ICE role (protocol.md §6.1: the peer with the greater base64 key controls). */
  controlling: boolean;
  servers?: IceServer[];
  /** Candidate types to gather (§6.3: no 'relay' when both sides have a NetBird relay). Default all. */
  candidateTypes?: readonly CandidateType[];
  /** Host addresses to offer; default: the machine's interface addresses (see excludeInterfaces). */
  hostAddresses?: readonly string[];
  /** Interfaces never offered as host candidates (the WireGuard interface itself). */
  excludeInterfaces?: readonly string[];
  /** Network namespace of the socket: TURN sockets open and interfaces are listed there (tests). */
  netns?: string;
  keepaliveMs?: number;
  disconnectedMs?: number;
  failedMs?: number;
  /** Interval between rounds of checks while connecting (Pion: 200 ms). */
  checkIntervalMs?: number;
  /** Give up when nothing was nominated this long after checks began (default disconnected+failed). */
  connectTimeoutMs?: number;
  logger?: IceLogger;
}

/** The path ICE proved: WireGuard can use `endpoint` directly. */
export interface SelectedPath {
  local: Candidate;
  remote: Candidate;
  endpoint: Endpoint;
  /** Last measured round trip of a check on this pair. */
  rttMs: number;
  /** True when one side uses a TURN relay candidate. */
  relayed: boolean;
}

export interface IceAgentEvents {
  candidate: [candidate: Candidate, text: string];
  gathered: [];
  state: [state: IceState];
  selected: [path: SelectedPath];
}

type PairState = 'waiting' | 'succeeded' | 'failed';

interface Pair {
  base: IceBase;
  baseCandidate: Candidate;
  remote: Candidate;
  priority: number;
  state: PairState;
  nextCheckAt: number;
  interval: number;
  sent: number;
  /** Local candidate the remote saw (host/srflx/prflx/relay), from the mapped address. */
  local: Candidate | null;
  rttMs: number;
  lastReceived: number;
  nominateOnSuccess: boolean;
}

interface Pending {
  pair: Pair | null;
  sentAt: number;
  useCandidate: boolean;
  /** For STUN-server (srflx) queries. */
  onServerAnswer?: (buf: Buffer) => void;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
function randomLetters(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += LETTERS[randomInt(52)];
  return s;
}

/** Minimum time a valid pair of this local type waits before the controller nominates it (Pion's defaults). */
const ACCEPTANCE_WAIT: Record<CandidateType, number> = { host: 0, srflx: 500, prflx: 1000, relay: 2000 };

export class IceAgent extends EventEmitter<IceAgentEvents> implements StunSink {
  localUfrag = '';
  localPwd = '';
  /** 5 random bytes naming the current session (Body.sessionId, protocol.md §5.6). */
  sessionId: Buffer = Buffer.alloc(0);
  controlling: boolean;
  state: IceState = 'new';
  selected: Pair | null = null;
  readonly localCandidates: Candidate[] = [];
  readonly remoteCandidates: Candidate[] = [];
  private readonly mux: IceMux;
  private readonly opts: IceAgentOptions;
  private readonly types: Set<CandidateType>;
  private readonly keepaliveMs: number;
  private readonly disconnectedMs: number;
  private readonly failedMs: number;
  private readonly checkIntervalMs: number;
  private readonly connectTimeoutMs: number;
  private tieBreaker: bigint;
  private remoteUfrag = '';
  private remotePwd = '';
  private pairs: Pair[] = [];
  private readonly pending = new Map<string, Pending>();
  private relays: TurnRelay[] = [];
  private hostBase: Candidate | null = null;
  private checkingSince = 0;
  private nominating: Pair | null = null;
  private nominateTries = 0;
  private lastKeepalive = 0;
  private timer: NodeJS.Timeout | null = null;
  private generation = 0;
  private readonly log: IceLogger;

  constructor(opts: IceAgentOptions) {
    super();
    this.opts = opts;
    this.mux = opts.mux;
    this.controlling = opts.controlling;
    this.types = new Set(opts.candidateTypes ?? ['host', 'srflx', 'relay']);
    this.keepaliveMs = opts.keepaliveMs ?? 4000;
    this.disconnectedMs = opts.disconnectedMs ?? 6000;
    this.failedMs = opts.failedMs ?? 6000;
    this.checkIntervalMs = opts.checkIntervalMs ?? 200;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? this.disconnectedMs + this.failedMs;
    this.tieBreaker = randomBytes(8).readBigUInt64BE(0);
    this.log = opts.logger ?? { debug: () => undefined };
    this.newCredentials();
  }

  private newCredentials(): void {
    if (this.localUfrag) this.mux.unregister(this.localUfrag, this);
    // As the reference client: 16 and 32 random ASCII letters.
    this.localUfrag = randomLetters(16);
    this.localPwd = randomLetters(32);
    this.sessionId = randomBytes(5);
    this.mux.register(this.localUfrag, this);
  }

  /** Takes over the credentials of a previous agent (same connection, new session). Call before gather(). */
  adoptCredentials(ufrag: string, pwd: string): void {
    this.mux.unregister(this.localUfrag, this);
    this.localUfrag = ufrag;
    this.localPwd = pwd;
    this.mux.register(ufrag, this);
  }

  /** Gathers local candidates, emitting each as found ('candidate'), then 'gathered'. */
  async gather(): Promise<void> {
    const gen = this.generation;
    const port = this.mux.port;
    const hosts = this.hostAddresses();
    hosts.forEach((address, i) => {
      const c: Candidate = {
        foundation: candidateFoundation('host', address),
        component: 1,
        protocol: 'udp',
        priority: candidatePriority('host', 65535 - i),
        address,
        port,
        type: 'host',
        extensions: [],
      };
      if (this.hostBase === null || (isIP(address) === 4 && isIP(this.hostBase.address) !== 4)) this.hostBase = c;
      if (this.types.has('host')) this.addLocal(c);
    });
    if (this.hostBase === null) {
      // No usable interface address: checks still go out of the socket; name the base by the wildcard.
      this.hostBase = { foundation: candidateFoundation('host', '0.0.0.0'), component: 1, protocol: 'udp', priority: candidatePriority('host'), address: '0.0.0.0', port, type: 'host', extensions: [] };
    }
    const servers = await Promise.all((this.opts.servers ?? []).map(async (s) => {
      try {
        const u = parseIceUrl(s.url);
        const ip = isIP(u.host) ? u.host : (await lookup(u.host, { family: 4 })).address;
        return { ...u, ip, username: s.username ?? '', password: s.password ?? '' };
      } catch (e) {
        this.log.debug(`ice: skipping server ${s.url}: ${(e as Error).message}`);
        return null;
      }
    }));
    const jobs: Promise<void>[] = [];
    for (const s of servers) {
      if (s === null || s.secure || s.transport !== 'udp') continue;
      // TURN servers answer Binding requests too, so both kinds give server-reflexive candidates.
      if (this.types.has('srflx')) jobs.push(this.gatherSrflx(s.ip, s.port, gen));
      if (s.scheme === 'turn' && this.types.has('relay')) jobs.push(this.gatherRelay(s.ip, s.port, s.username, s.password, gen));
    }
    await Promise.all(jobs);
    if (gen === this.generation && this.state !== 'closed') this.emit('gathered');
  }

  private hostAddresses(): string[] {
    if (this.opts.hostAddresses) return [...this.opts.hostAddresses];
    const out: string[] = [];
    const exclude = new Set(this.opts.excludeInterfaces ?? []);
    for (const [name, addrs] of Object.entries(interfacesIn(this.opts.netns))) {
      if (exclude.has(name)) continue;
      for (const a of addrs ?? []) {
        if (a.internal) continue;
        if (a.family === 'IPv6' && (this.mux.family === 4 || a.address.toLowerCase().startsWith('fe80') || a.scopeid)) continue;
        out.push(a.address);
      }
    }
    return out;
  }

  private addLocal(c: Candidate): void {
    if (this.localCandidates.some((x) => x.address === c.address && x.port === c.port && x.type === c.type)) return;
    this.localCandidates.push(c);
    this.emit('candidate', c, formatCandidate(c));
    this.formPairs();
  }

  private gatherSrflx(ip: string, port: number, gen: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const tid = randomBytes(12);
      const key = tid.toString('hex');
      const req = encodeStun({ method: StunMethod.Binding, cls: StunClass.Request, transactionId: tid, attributes: [] }, { fingerprint: true });
      let tries = 0;
      let timer: NodeJS.Timeout;
      const done = (): void => {
        clearTimeout(timer);
        this.pending.delete(key);
        this.mux.forget(key);
        resolve();
      };
      this.pending.set(key, {
        pair: null,
        sentAt: Date.now(),
        useCandidate: false,
        onServerAnswer: (buf) => {
          const msg = decodeStun(buf);
          if (msg === null || msg.cls !== StunClass.SuccessResponse) return done();
          const x = getAttr(msg, StunAttr.XorMappedAddress);
          const m = getAttr(msg, StunAttr.MappedAddress);
          const mapped = x ? decodeXorAddress(x, tid) : m ? decodeAddress(m) : null;
          if (mapped && gen === this.generation && this.hostBase) {
            const isHost = this.localCandidates.some((c) => c.type === 'host' && c.address === mapped.address && c.port === mapped.port);
            if (!isHost) {
              this.addLocal({
                foundation: candidateFoundation('srflx', this.hostBase.address, 'udp', `${ip}:${port}`),
                component: 1,
                protocol: 'udp',
                priority: candidatePriority('srflx'),
                address: mapped.address,
                port: mapped.port,
                type: 'srflx',
                relatedAddress: this.hostBase.address,
                relatedPort: this.hostBase.port,
                extensions: [],
              });
            }
          }
          done();
        },
      });
      this.mux.expect(key, this);
      const send = (): void => {
        if (tries++ >= 6 || gen !== this.generation || this.state === 'closed') return done();
        this.mux.sendStun(req, ip, port);
        timer = setTimeout(send, 250 * Math.min(2 ** (tries - 1), 4));
      };
      send();
    });
  }

  private async gatherRelay(ip: string, port: number, username: string, password: string, gen: number): Promise<void> {
    let relay: TurnRelay;
    try {
      relay = await TurnRelay.open({ host: ip, port, username, password, ...(this.opts.netns !== undefined ? { netns: this.opts.netns } : {}) });
    } catch (e) {
      this.log.debug(`ice: TURN ${ip}:${port}: ${(e as Error).message}`);
      return;
    }
    if (gen !== this.generation || this.state === 'closed' || relay.relayed === null) {
      await relay.close();
      return;
    }
    relay.attach(this, this.mux);
    relay.onError = (m) => this.log.debug(`ice: TURN ${ip}:${port}: ${m}`);
    this.relays.push(relay);
    const r = relay.relayed;
    this.addLocal({
      foundation: candidateFoundation('relay', r.address, 'udp', `${ip}:${port}`),
      component: 1,
      protocol: 'udp',
      priority: candidatePriority('relay'),
      address: r.address,
      port: r.port,
      type: 'relay',
      relatedAddress: relay.mapped?.address ?? '0.0.0.0',
      relatedPort: relay.mapped?.port ?? 0,
      extensions: [],
    });
  }

  /** Remote ICE credentials (from the OFFER/ANSWER payload); starts the checks. */
  setRemoteCredentials(ufrag: string, pwd: string): void {
    if (ufrag === this.remoteUfrag && pwd === this.remotePwd) return;
    this.remoteUfrag = ufrag;
    this.remotePwd = pwd;
    if (this.state === 'new') this.setState('checking');
    this.checkingSince = Date.now();
    this.startTimer();
    this.formPairs();
  }

  get remoteCredentials(): { ufrag: string; pwd: string } {
    return { ufrag: this.remoteUfrag, pwd: this.remotePwd };
  }

  /** Adds a trickled remote candidate (§6.3 text); false if it is unusable (tcp, mDNS name, other component). */
  addRemoteCandidate(input: string | Candidate): boolean {
    const c = typeof input === 'string' ? parseCandidate(input) : input;
    if (c.protocol !== 'udp' || c.component !== 1 || !hasLiteralAddress(c)) return false;
    if (isIP(c.address) === 6 && this.mux.family === 4 && this.relays.length === 0) return false;
    const existing = this.remoteCandidates.find((x) => x.address === c.address && x.port === c.port);
    if (existing) {
      // A signalled candidate replaces a peer-reflexive guess of the same address.
      if (existing.type === 'prflx' && c.type !== 'prflx') Object.assign(existing, c);
      return true;
    }
    this.remoteCandidates.push(c);
    // As the reference (§6.3): a srflx candidate with a candidate ID whose port differs from its
    // related port also gets a twin on the related port (static port-forwards of the WireGuard port).
    if (c.type === 'srflx' && c.relatedPort !== undefined && c.relatedPort !== c.port && c.extensions.some(([k]) => k === 'candidate-id')) {
      const port = c.relatedPort;
      if (!this.remoteCandidates.some((x) => x.address === c.address && x.port === port)) {
        this.remoteCandidates.push({ ...c, port, priority: Math.max(0, c.priority - 1), extensions: [] });
      }
    }
    this.formPairs();
    return true;
  }

  private localBases(): { base: IceBase; cand: Candidate }[] {
    const out: { base: IceBase; cand: Candidate }[] = [];
    if (this.hostBase && (this.types.has('host') || this.types.has('srflx'))) out.push({ base: this.mux, cand: this.hostBase });
    for (const r of this.relays) {
      const c = this.localCandidates.find((x) => x.type === 'relay' && x.address === r.relayed?.address && x.port === r.relayed?.port);
      if (c) out.push({ base: r, cand: c });
    }
    return out;
  }

  private formPairs(): void {
    if (!this.remotePwd) return;
    for (const { base, cand } of this.localBases()) {
      for (const remote of this.remoteCandidates) {
        if (base.kind === 'udp' && isIP(remote.address) === 6 && this.mux.family === 4) continue;
        if (base.kind === 'relay' && isIP(remote.address) !== isIP(cand.address)) continue;
        if (this.pairs.some((p) => p.base === base && p.remote === remote)) continue;
        this.pairs.push(this.newPair(base, cand, remote));
      }
    }
    this.pairs.sort((a, b) => b.priority - a.priority);
  }

  private newPair(base: IceBase, cand: Candidate, remote: Candidate): Pair {
    const g = this.controlling ? cand.priority : remote.priority;
    const d = this.controlling ? remote.priority : cand.priority;
    return {
      base, baseCandidate: cand, remote, priority: pairPriority(g, d), state: 'waiting', nextCheckAt: 0,
      interval: this.checkIntervalMs, sent: 0, local: null, rttMs: 0, lastReceived: 0, nominateOnSuccess: false,
    };
  }

  private timerMs = 0;

  /** Fast ticks while checking, slow ones once a pair is selected (many peers share the loop). */
  private startTimer(): void {
    const ms = this.selected ? Math.max(50, Math.min(250, this.keepaliveMs / 4)) : Math.min(50, this.checkIntervalMs);
    if (this.timer && ms === this.timerMs) return;
    if (this.timer) clearInterval(this.timer);
    this.timerMs = ms;
    this.timer = setInterval(() => this.tick(), ms);
    this.timer.unref();
  }

  private sendCheck(pair: Pair, useCandidate: boolean, now: number): void {
    if (!this.remotePwd) return;
    const tid = randomBytes(12);
    const key = tid.toString('hex');
    // PRIORITY = what a peer-reflexive candidate of ours would be worth (RFC 8445 §7.1.1).
    const prflxPriority = pair.base.kind === 'relay' ? pair.baseCandidate.priority : candidatePriority('prflx', 65535);
    const req = buildCheckRequest({
      transactionId: tid, localUfrag: this.localUfrag, remoteUfrag: this.remoteUfrag, remotePwd: this.remotePwd,
      priority: prflxPriority, controlling: this.controlling, tieBreaker: this.tieBreaker, useCandidate,
    });
    this.pending.set(key, { pair, sentAt: now, useCandidate });
    if (pair.base.kind === 'udp') this.mux.expect(key, this);
    pair.sent++;
    pair.base.sendStun(req, pair.remote.address, pair.remote.port);
  }

  private tick(): void {
    if (this.state === 'closed') return;
    const now = Date.now();
    // Drop transactions nobody answered.
    for (const [k, p] of this.pending) {
      if (!p.onServerAnswer && now - p.sentAt > 5000) {
        this.pending.delete(k);
        this.mux.forget(k);
      }
    }
    if (!this.remotePwd || this.state === 'failed') return;
    if (this.selected === null) {
      for (const p of this.pairs) {
        if (p.state === 'failed' || now < p.nextCheckAt) continue;
        // Keep checking succeeded pairs too (both directions must open in NATs), slower.
        this.sendCheck(p, false, now);
        p.nextCheckAt = now + p.interval;
        if (p.state === 'succeeded' || p.sent > 10) p.interval = Math.min(p.interval * 1.5, 1000);
      }
      if (this.controlling) this.nominate(now);
      if (this.state === 'checking' && now - this.checkingSince > this.connectTimeoutMs) {
        this.log.debug(`ice: no path after ${this.connectTimeoutMs} ms (${this.pairs.length} pairs)`);
        this.setState('failed');
      }
      return;
    }
    const sel = this.selected;
    const idle = now - sel.lastReceived;
    // Keepalive requests (Pion: binding requests) also measure the RTT; faster while disconnected.
    const every = this.state === 'disconnected' ? Math.min(1000, this.keepaliveMs) : this.keepaliveMs;
    if (now - this.lastKeepalive >= every) {
      this.lastKeepalive = now;
      this.sendCheck(sel, false, now);
    }
    if (this.state === 'connected' && idle > this.disconnectedMs) this.setState('disconnected');
    else if (this.state === 'disconnected' && idle > this.disconnectedMs + this.failedMs) this.setState('failed');
  }

  private nominate(now: number): void {
    if (this.nominating) {
      if (now >= this.nominating.nextCheckAt) {
        if (++this.nominateTries > 8) {
          this.nominating = null;
          return;
        }
        this.sendCheck(this.nominating, true, now);
        this.nominating.nextCheckAt = now + 200;
      }
      return;
    }
    let best: Pair | null = null;
    for (const p of this.pairs) if (p.state === 'succeeded' && (best === null || p.priority > best.priority)) best = p;
    if (best === null) return;
    // A pair through a TURN relay on either side waits longest, giving direct pairs their chance.
    const type = best.base.kind === 'relay' || best.remote.type === 'relay' ? 'relay' : (best.local?.type ?? 'host');
    if (now - this.checkingSince < ACCEPTANCE_WAIT[type]) return;
    this.nominating = best;
    this.nominateTries = 0;
    this.sendCheck(best, true, now);
    best.nextCheckAt = now + 200;
  }

  /** STUN from the mux or a TURN relay. */
  onStun(buf: Buffer, address: string, port: number, base: IceBase): void {
    if (this.state === 'closed') return;
    const cls = ((buf[0]! << 8) | buf[1]!) & 0x0110;
    if (cls === 0) {
      this.onRequest(buf, address, port, base);
      return;
    }
    const key = transactionKey(buf);
    const p = this.pending.get(key);
    if (!p) return;
    if (p.onServerAnswer) {
      p.onServerAnswer(buf);
      return;
    }
    this.onResponse(buf, address, port, base, p, key);
  }

  private onRequest(buf: Buffer, address: string, port: number, base: IceBase): void {
    const r = parseCheckRequest(buf, this.localUfrag, this.localPwd);
    if (!r.ok) {
      this.log.debug(`ice: dropped check from ${address}:${port}: ${r.reason}`);
      if (r.answerWith && r.transactionId) base.sendStun(buildCheckError(r.transactionId, r.answerWith, r.answerWith === 401 ? 'Unauthorized' : 'Bad Request'), address, port);
      return;
    }
    const req = r.request;
    if (this.remoteUfrag && req.remoteUfrag !== this.remoteUfrag) {
      this.log.debug(`ice: check for an old session (ufrag ${req.remoteUfrag}), ignored`);
      return;
    }
    // Role conflict (RFC 8445 §7.3.1.1).
    if (this.controlling && req.controlling !== undefined) {
      if (this.tieBreaker >= req.controlling) {
        base.sendStun(buildCheckError(req.transactionId, 487, 'Role Conflict', this.localPwd), address, port);
        return;
      }
      this.switchRole(false);
    } else if (!this.controlling && req.controlled !== undefined) {
      if (this.tieBreaker >= req.controlled) this.switchRole(true);
      else {
        base.sendStun(buildCheckError(req.transactionId, 487, 'Role Conflict', this.localPwd), address, port);
        return;
      }
    }
    base.sendStun(buildCheckSuccess(req.transactionId, { address, port }, this.localPwd), address, port);
    this.log.debug(`ice: check from ${address}:${port} via ${base.kind}${req.useCandidate ? " (USE-CANDIDATE)" : ""}`);
    if (!this.remotePwd) return; // answered; pairs come once the remote credentials are known
    let remote = this.remoteCandidates.find((c) => c.address === address && c.port === port);
    if (!remote) {
      remote = {
        foundation: candidateFoundation('prflx', address), component: 1, protocol: 'udp', priority: req.priority,
        address, port, type: 'prflx', extensions: [],
      };
      this.remoteCandidates.push(remote);
      this.formPairs();
    }
    const pair = this.pairs.find((p) => p.base === base && p.remote === remote);
    if (!pair) return;
    const now = Date.now();
    pair.lastReceived = now;
    if (this.selected === null && pair.state !== 'succeeded') {
      // Triggered check (RFC 8445 §7.3.1.4).
      pair.nextCheckAt = now;
      if (pair.state === 'failed') pair.state = 'waiting';
    }
    if (req.useCandidate && !this.controlling) {
      if (pair.state === 'succeeded') this.select(pair);
      else pair.nominateOnSuccess = true;
    }
  }

  private onResponse(buf: Buffer, address: string, port: number, base: IceBase, p: Pending, key: string): void {
    const pair = p.pair!;
    // Answers must come from where the request went (RFC 8445 §7.2.5.2.1).
    if (pair.base !== base || pair.remote.address !== address || pair.remote.port !== port) return;
    const res = parseCheckResponse(buf, this.remotePwd);
    if (res === null) return;
    this.pending.delete(key);
    this.mux.forget(key);
    const now = Date.now();
    if (res.kind === 'error') {
      if (res.code === 487) {
        this.switchRole(!this.controlling);
        pair.nextCheckAt = now;
      } else pair.state = 'failed';
      return;
    }
    pair.rttMs = now - p.sentAt;
    pair.lastReceived = now;
    pair.local = this.localFor(pair, res.mapped.address, res.mapped.port);
    const first = pair.state !== 'succeeded';
    pair.state = 'succeeded';
    if (first) this.log.debug(`ice: pair ${describe(pair)} succeeded, rtt ${pair.rttMs} ms`);
    if (this.selected === pair) {
      if (this.state === 'disconnected') this.setState('connected');
      return;
    }
    if (this.selected !== null) return;
    if ((this.controlling && p.useCandidate) || (!this.controlling && pair.nominateOnSuccess)) this.select(pair);
  }

  private localFor(pair: Pair, address: string, port: number): Candidate {
    if (pair.base.kind === 'relay') return pair.baseCandidate;
    const known = this.localCandidates.find((c) => c.address === address && c.port === port && c.type !== 'relay');
    if (known) return known;
    return {
      foundation: candidateFoundation('prflx', pair.baseCandidate.address), component: 1, protocol: 'udp',
      priority: candidatePriority('prflx'), address, port, type: 'prflx',
      relatedAddress: pair.baseCandidate.address, relatedPort: pair.baseCandidate.port, extensions: [],
    };
  }

  private switchRole(controlling: boolean): void {
    this.log.debug(`ice: role conflict: now ${controlling ? 'controlling' : 'controlled'}`);
    this.controlling = controlling;
    for (const p of this.pairs) {
      const g = controlling ? p.baseCandidate.priority : p.remote.priority;
      const d = controlling ? p.remote.priority : p.baseCandidate.priority;
      p.priority = pairPriority(g, d);
    }
    this.pairs.sort((a, b) => b.priority - a.priority);
  }

  private select(pair: Pair): void {
    if (this.selected !== null) return;
    this.selected = pair;
    this.nominating = null;
    this.lastKeepalive = Date.now();
    this.startTimer();
    const path = this.selectedPath();
    if (!path) return;
    this.log.debug(`ice: selected ${describe(pair)}`);
    this.setState('connected');
    this.emit('selected', path);
  }

  /** The selected path now (RTT is refreshed by keepalives). */
  selectedPath(): SelectedPath | null {
    const pair = this.selected;
    if (!pair) return null;
    const remoteRelay = pair.remote.type === 'relay';
    return {
      local: pair.local ?? pair.baseCandidate,
      remote: pair.remote,
      endpoint: pair.base.endpointFor(pair.remote.address, pair.remote.port),
      rttMs: pair.rttMs,
      relayed: pair.base.kind === 'relay' || remoteRelay,
    };
  }

  private setState(s: IceState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  /**
   * ICE restart: new ufrag/pwd/sessionId (or only a new sessionId with keepCredentials, for when the
   * remote recreated its agent and still knows our credentials), forget the remote side and every
   * pair; gather() again.
   */
  async restart(opts: { keepCredentials?: boolean } = {}): Promise<void> {
    this.generation++;
    if (opts.keepCredentials) this.sessionId = randomBytes(5);
    else this.newCredentials();
    this.remoteUfrag = '';
    this.remotePwd = '';
    this.remoteCandidates.length = 0;
    this.localCandidates.length = 0;
    this.pairs = [];
    this.selected = null;
    this.nominating = null;
    this.hostBase = null;
    for (const k of this.pending.keys()) this.mux.forget(k);
    this.pending.clear();
    this.tieBreaker = randomBytes(8).readBigUInt64BE(0);
    const relays = this.relays;
    this.relays = [];
    await Promise.all(relays.map((r) => r.close().catch(() => undefined)));
    if (this.state !== 'closed') this.setState('new');
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.generation++;
    this.setState('closed');
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.mux.unregister(this.localUfrag, this);
    for (const k of this.pending.keys()) this.mux.forget(k);
    this.pending.clear();
    const relays = this.relays;
    this.relays = [];
    await Promise.all(relays.map((r) => r.close().catch(() => undefined)));
    this.removeAllListeners();
  }

  /** Counters for status and tests. */
  stats(): { pairs: number; succeeded: number; state: IceState; relays: number } {
    return { pairs: this.pairs.length, succeeded: this.pairs.filter((p) => p.state === 'succeeded').length, state: this.state, relays: this.relays.length };
  }
}

function describe(p: Pair): string {
  return `${p.local?.type ?? p.baseCandidate.type}(${p.base.kind}) -> ${p.remote.type} ${p.remote.address}:${p.remote.port}`;
}
