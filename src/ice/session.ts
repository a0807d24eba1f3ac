/**
 * The ICE half of a NetBird peer connection (protocol.md §6.2-§6.4): credentials for OFFER/ANSWER,
 * sessionId handling, candidate trickling, and moving the WireGuard peer between the relay and the
 * path ICE proves. The caller (the engine's PeerConnection) owns Signal and the NetBird relay; this
 * tells it when to use the direct path (onDirect), when to go back to the relay (onLost) and when a
 * new OFFER is needed (requestOffer: retries after failure, network changes).
 */
import { IceAgent, type IceAgentOptions, type IceServer, type IceState, type SelectedPath, type IceLogger } from './agent.js';
import type { CandidateType } from './candidate.js';
import type { IceMux } from './mux.js';

export interface IceSessionOptions {
  mux: IceMux;
  /** protocol.md §6.1: our base64 key is the greater one. */
  controlling: boolean;
  /** Current STUN/TURN servers from management (read at each agent start). */
  servers: () => IceServer[];
  sendCandidate: (text: string) => void;
  /** A new OFFER should go out (retry after failure, network change). */
  requestOffer: () => void;
  /** ICE proved a path: point WireGuard at path.endpoint. */
  onDirect: (path: SelectedPath) => void;
  /** The ICE path is gone (disconnected/failed/closed): go back to the relay. */
  onLost: (reason: string) => void;
  /** Retry delay after a failure: first, then doubling up to max (default 5 s .. 60 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Agent parameters (timeouts, interfaces to skip, host addresses, netns for TURN sockets). */
  agent?: Partial<Omit<IceAgentOptions, 'mux' | 'controlling' | 'servers' | 'candidateTypes'>>;
  logger?: IceLogger;
}

export interface IceStatus {
  state: IceState;
  /** A path is selected and WireGuard should be on it. */
  connected: boolean;
  relayed: boolean;
  localType: CandidateType | '';
  remoteType: CandidateType | '';
  localEndpoint: string;
  remoteEndpoint: string;
  /** Round trip of the last check on the selected pair, in nanoseconds (status `latency`). */
  latencyNs: number;
  /** Text of the WireGuard endpoint of the selected path ('' if none), to compare with the device's. */
  wgEndpoint: string;
}

function hp(a: string, p: number): string {
  return a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`;
}

export class IceSession {
  private agent: IceAgent;
  private readonly opts: IceSessionOptions;
  private remoteUfrag = '';
  private remotePwd = '';
  private remoteSession = '';
  private started = false;
  private direct = false;
  private disabled = false;
  private retryDelay: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** When the current attempt started (for time-to-P2P). */
  attemptStartedAt = 0;
  /** Milliseconds from attempt start to the last selection. */
  lastConnectMs = 0;

  constructor(opts: IceSessionOptions) {
    this.opts = opts;
    this.retryDelay = opts.retryMinMs ?? 5000;
    this.agent = this.newAgent(['host', 'srflx', 'relay']);
  }

  private newAgent(types: readonly CandidateType[]): IceAgent {
    const a = new IceAgent({
      ...(this.opts.agent ?? {}),
      mux: this.opts.mux,
      controlling: this.opts.controlling,
      servers: this.opts.servers(),
      candidateTypes: types,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    a.on('candidate', (_c, text) => {
      if (a === this.agent) this.opts.sendCandidate(text);
    });
    // The agent reports 'connected' (state) and then the path ('selected'); recoveries from
    // 'disconnected' only come as state changes. Either moves WireGuard to the path once.
    a.on('selected', (path) => {
      if (a === this.agent) this.goDirect(path);
    });
    a.on('state', (s) => {
      if (a === this.agent) this.onState(s);
    });
    return a;
  }

  /** "<ufrag>:<pwd>" for OFFER/ANSWER, ":" when ICE is off for this peer; sessionId when offered. */
  get credentials(): { payload: string; sessionId: Buffer | undefined } {
    if (this.disabled) return { payload: ':', sessionId: undefined };
    return { payload: `${this.agent.localUfrag}:${this.agent.localPwd}`, sessionId: this.agent.sessionId };
  }

  /**
   * An OFFER/ANSWER arrived; answer an OFFER with `credentials` in the same turn (they carry the new
   * sessionId), candidates follow on the next turn. `relayOnBoth`: both sides have a NetBird relay, so no TURN candidates
   * are gathered (§6.3). Starts or restarts the agent as the reference does (§6.2).
   */
  onRemoteCredentials(payload: string, sessionId: Uint8Array | undefined, relayOnBoth: boolean): void {
    if (this.closed) return;
    const colon = payload.indexOf(':');
    if (colon < 0 || payload.indexOf(':', colon + 1) >= 0) return; // reference: rejected
    const ufrag = payload.slice(0, colon);
    const pwd = payload.slice(colon + 1);
    if (!ufrag || !pwd) {
      // Remote does not (or no longer) offer ICE: stop ours and answer with ":" from now on.
      if (!this.disabled) {
        this.disabled = true;
        this.stopAgent('remote offers no ICE');
      }
      return;
    }
    this.disabled = false;
    const session = sessionId ? Buffer.from(sessionId).toString('hex') : '';
    const same = ufrag === this.remoteUfrag && pwd === this.remotePwd && session === this.remoteSession;
    if (same && this.started) return;
    const types: CandidateType[] = relayOnBoth ? ['host', 'srflx'] : ['host', 'srflx', 'relay'];
    this.remoteUfrag = ufrag;
    this.remotePwd = pwd;
    this.remoteSession = session;
    this.started = true;
    this.attemptStartedAt = Date.now();
    // A fresh agent (new sessionId) with our credentials, which the remote already knows (§6.2).
    this.replaceAgent(types, true);
    this.agent.setRemoteCredentials(ufrag, pwd);
    // Gather on the next turn: the caller sends its ANSWER (with the new sessionId) first, and the
    // remote drops candidates that arrive before it has our credentials (§6.3).
    const agent = this.agent;
    setImmediate(() => {
      if (agent === this.agent && !this.closed) void agent.gather();
    });
  }

  private replaceAgent(types: readonly CandidateType[], keepCredentials: boolean): void {
    const old = this.agent;
    const creds = { ufrag: old.localUfrag, pwd: old.localPwd };
    if (this.direct) {
      this.direct = false;
      this.opts.onLost('ICE session restarted');
    }
    old.removeAllListeners();
    void old.close();
    this.agent = this.newAgent(types);
    if (keepCredentials) this.agent.adoptCredentials(creds.ufrag, creds.pwd);
  }

  /** A trickled CANDIDATE from the remote; ignored while no session is running. */
  onRemoteCandidate(text: string): void {
    if (this.closed || this.disabled || !this.started) return;
    try {
      this.agent.addRemoteCandidate(text);
    } catch (e) {
      this.opts.logger?.debug(`ice: bad remote candidate "${text}": ${(e as Error).message}`);
    }
  }

  private goDirect(path: SelectedPath): void {
    if (this.closed || this.direct) return;
    this.direct = true;
    this.retryDelay = this.opts.retryMinMs ?? 5000;
    this.lastConnectMs = Date.now() - this.attemptStartedAt;
    this.opts.onDirect(path);
  }

  private onState(s: IceState): void {
    if (this.closed) return;
    if (s === 'connected') {
      const path = this.agent.selectedPath();
      if (path) this.goDirect(path);
      return;
    }
    if ((s === 'disconnected' || s === 'failed') && this.direct) {
      this.direct = false;
      this.opts.onLost(`ICE ${s}`);
    }
    if (s === 'failed') this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.opts.retryMaxMs ?? 60_000);
    this.opts.logger?.debug(`ice: retrying in ${delay} ms`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.restart();
    }, delay);
    this.retryTimer.unref();
  }

  /** New credentials and session, then a new OFFER: after failures and when the network changed. */
  restart(): void {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.replaceAgent(['host', 'srflx', 'relay'], false);
    this.started = false;
    this.remoteUfrag = '';
    this.remotePwd = '';
    this.remoteSession = '';
    this.opts.requestOffer();
  }

  /** Host addresses changed: regather with a fresh session at once (backoff reset). */
  networkChanged(): void {
    this.retryDelay = this.opts.retryMinMs ?? 5000;
    this.restart();
  }

  private stopAgent(reason: string): void {
    if (this.direct) {
      this.direct = false;
      this.opts.onLost(reason);
    }
    this.started = false;
    this.remoteUfrag = '';
    this.remotePwd = '';
    this.remoteSession = '';
    const old = this.agent;
    old.removeAllListeners();
    void old.close();
    this.agent = this.newAgent(['host', 'srflx', 'relay']);
  }

  get isDirect(): boolean {
    return this.direct;
  }

  get currentAgent(): IceAgent {
    return this.agent;
  }

  status(): IceStatus {
    const path = this.direct ? this.agent.selectedPath() : null;
    if (!path) {
      return { state: this.agent.state, connected: false, relayed: false, localType: '', remoteType: '', localEndpoint: '', remoteEndpoint: '', latencyNs: 0, wgEndpoint: '' };
    }
    return {
      state: this.agent.state,
      connected: true,
      relayed: path.relayed,
      localType: path.local.type,
      remoteType: path.remote.type,
      localEndpoint: hp(path.local.address, path.local.port),
      remoteEndpoint: hp(path.remote.address, path.remote.port),
      latencyNs: Math.round(path.rttMs * 1e6),
      wgEndpoint: path.endpoint.toString(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.agent.removeAllListeners();
    await this.agent.close();
  }
}
