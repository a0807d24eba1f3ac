import type { FlowSwitch, NetbirdConfigBuilder } from './config.js';
import type { Affected, ChangeListener, PeerRef } from './core.js';
import type { AccountManager } from './manager.js';
import { encodeConfigOnly, encodeDeletedPeerResponse, encodeNetworkMap, encodeSyncResponse, forwarderPort, sessionExpiresAt } from './networkmap.js';
import type { AccountState } from './state.js';
import type { Peer } from './types.js';
import { ManagementError } from './types.js';

/**
 * Live network-map delivery to connected Sync streams (protocol.md §4.5).
 *
 * Changes reported by the AccountManager are collected for the rest of the current event-loop turn
 * (so a burst of admin edits costs one pass), then for each affected connected peer the map is
 * recomputed and compared with the digest of the last map that peer received: only peers whose map
 * really changed get a message. Per peer, the first update goes out at once; further updates within
 * `debounceMs` of each other are merged (only the newest map is sent when the burst goes quiet, or
 * after `maxDelayMs` at the latest), while credential refreshes queue in order.
 */

/** Traffic events for `peer`: the account switch, limited to `network_traffic_logs_groups` when set. */
export function flowSwitchFor(state: AccountState, peer: Peer): FlowSwitch {
  const s = state.account.settings;
  let enabled = s.networkTrafficLogsEnabled;
  if (enabled && s.networkTrafficLogsGroups.length > 0) {
    enabled = s.networkTrafficLogsGroups.some((gid) => state.groups.get(gid)?.peers.includes(peer.id) ?? false);
  }
  return { enabled, counters: s.networkTrafficPacketCounterEnabled };
}

/** Where a session's SyncResponse messages go; the gRPC layer seals and writes them. */
export interface SyncSink {
  /** `frame` holds a plaintext SyncResponse after SYNC_HEADROOM free bytes (see wire.ts sealFrameInPlace). */
  send(frame: Buffer): void;
  /** Ends the stream: normally, or with the given error. */
  end(error?: ManagementError): void;
}

export interface UpdateHubOptions {
  debounceMs?: number;
  maxDelayMs?: number;
}

export interface UpdateHubStats {
  connected: number;
  mapsComputed: number;
  mapsSent: number;
  configsSent: number;
}

function flowKeyOf(sw: FlowSwitch): string {
  return sw.enabled ? (sw.counters ? 'on+counters' : 'on') : 'off';
}

export class SyncSession {
  lastDigest = '';
  /** The traffic-event switch this peer was last told (see refreshFlow). */
  flowKey = '';
  closed = false;
  /** Open coalescing window: further map updates wait for it to end. */
  windowTimer: NodeJS.Timeout | undefined;
  windowStart = 0;
  dirty = false;
  queuedConfigs: Buffer[] = [];
  readonly timers: NodeJS.Timeout[] = [];

  constructor(
    readonly accountId: string,
    readonly peerId: string,
    readonly peerKey: string,
    readonly sink: SyncSink,
  ) {}
}

export class UpdateHub implements ChangeListener {
  private readonly sessions = new Map<string, SyncSession>();
  private readonly byAccount = new Map<string, Set<SyncSession>>();
  private readonly pending = new Map<string, Set<string> | 'all'>();
  private flushScheduled = false;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly unsubscribe: () => void;
  readonly stats: UpdateHubStats = { connected: 0, mapsComputed: 0, mapsSent: 0, configsSent: 0 };

  constructor(
    private readonly manager: AccountManager,
    private readonly infra: NetbirdConfigBuilder,
    options: UpdateHubOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.unsubscribe = manager.addListener(this);
  }

  /** Number of connected Sync streams. */
  get connectedCount(): number {
    return this.sessions.size;
  }

  isConnected(peerId: string): boolean {
    return this.sessions.has(peerId);
  }

  /**
   * Registers a Sync stream for an authenticated, registered peer and sends the initial message
   * (full map + NetbirdConfig). A newer stream of the same peer replaces the older one.
   */
  open(ref: PeerRef, sink: SyncSink): SyncSession {
    const old = this.sessions.get(ref.peer.id);
    const s = new SyncSession(ref.state.id, ref.peer.id, ref.peer.key, sink);
    this.sessions.set(s.peerId, s);
    let set = this.byAccount.get(s.accountId);
    if (!set) this.byAccount.set(s.accountId, (set = new Set()));
    set.add(s);
    // The old stream ends after the new one is registered, so its end handler sees the peer as still
    // connected (isConnected) and does not mark it offline.
    if (old) {
      this.clearTimers(old);
      old.closed = true;
      set.delete(old);
      old.sink.end(undefined);
    }
    this.stats.connected = this.sessions.size;

    const state = ref.state;
    const peer = state.peers.get(ref.peer.id) ?? ref.peer;
    const map = encodeNetworkMap(state, peer, this.manager.now(), forwarderPort(state));
    this.stats.mapsComputed++;
    s.lastDigest = map.digest;
    s.flowKey = flowKeyOf(flowSwitchFor(state, peer));
    sink.send(encodeSyncResponse(map, state.account.serial, peer, sessionExpiresAt(state, peer), this.infra.full(true, flowSwitchFor(state, peer))));
    this.stats.mapsSent++;
    this.armRefresh(s);
    return s;
  }

  /** The stream ended (client went away). Returns true if it was the peer's current stream. */
  close(s: SyncSession): boolean {
    if (this.sessions.get(s.peerId) !== s) {
      this.clearTimers(s);
      s.closed = true;
      return false;
    }
    this.remove(s);
    return true;
  }

  /** Ends every stream (server shutdown) and detaches from the manager. */
  shutdown(): void {
    this.unsubscribe();
    for (const s of [...this.sessions.values()]) this.drop(s, undefined);
  }

  private remove(s: SyncSession): void {
    this.clearTimers(s);
    s.closed = true;
    if (this.sessions.get(s.peerId) === s) this.sessions.delete(s.peerId);
    this.byAccount.get(s.accountId)?.delete(s);
    this.stats.connected = this.sessions.size;
  }

  private drop(s: SyncSession, error: ManagementError | undefined): void {
    this.remove(s);
    s.sink.end(error);
  }

  private clearTimers(s: SyncSession): void {
    if (s.windowTimer) clearTimeout(s.windowTimer);
    s.windowTimer = undefined;
    for (const t of s.timers) clearInterval(t);
    s.timers.length = 0;
  }

  // ----- credential refresh -----
  private armRefresh(s: SyncSession): void {
    const turnTtl = this.infra.turnTtlSeconds;
    const relayTtl = this.infra.relayTtlSeconds;
    const every = (ttl: number, withTurn: boolean): void => {
      const t = setInterval(() => this.enqueueConfig(s, encodeConfigOnly(this.infra.refresh(withTurn, this.flowSwitchOf(s)))), Math.max(1, ttl * 750));
      t.unref();
      s.timers.push(t);
    };
    if (turnTtl !== undefined) every(turnTtl, true);
    // A TURN refresh carries a fresh relay token too; a separate relay timer only when periods differ.
    if (relayTtl !== undefined && relayTtl !== turnTtl) every(relayTtl, false);
  }

  private flowSwitchOf(s: SyncSession): FlowSwitch | undefined {
    try {
      const state = this.manager.accountState(s.accountId);
      const peer = state.peers.get(s.peerId);
      return peer ? flowSwitchFor(state, peer) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Account settings or groups changed: peers whose traffic-event switch flipped get a config-only
   * message with the new FlowConfig (and a fresh relay token, since a config without relay disables it).
   */
  private refreshFlow(s: SyncSession, state: AccountState): void {
    const peer = state.peers.get(s.peerId);
    if (!peer || s.closed) return;
    const sw = flowSwitchFor(state, peer);
    const key = flowKeyOf(sw);
    if (key === s.flowKey) return;
    s.flowKey = key;
    this.enqueueConfig(s, encodeConfigOnly(this.infra.refresh(false, sw)));
  }

  private enqueueConfig(s: SyncSession, msg: Buffer): void {
    if (s.closed) return;
    if (s.windowTimer) {
      s.queuedConfigs.push(msg);
      return;
    }
    s.sink.send(msg);
    this.stats.configsSent++;
  }

  // ----- change handling -----
  accountChanged(accountId: string, affected: Affected): void {
    const cur = this.pending.get(accountId);
    if (affected === 'all' || cur === 'all') this.pending.set(accountId, 'all');
    else if (!cur) this.pending.set(accountId, new Set(affected));
    else for (const id of affected) cur.add(id);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  peerDeleted(accountId: string, peer: Peer): void {
    const s = this.sessions.get(peer.id);
    if (!s) return;
    let state: AccountState | undefined;
    try {
      state = this.manager.accountState(accountId);
    } catch {
      state = undefined;
    }
    if (state) {
      s.sink.send(encodeDeletedPeerResponse(state, peer, state.account.serial, forwarderPort(state)));
      this.stats.mapsSent++;
    }
    this.drop(s, undefined);
  }

  peerLoginExpired(_accountId: string, peer: Peer): void {
    const s = this.sessions.get(peer.id);
    if (s) this.drop(s, new ManagementError('permission_denied', 'peer login has expired, please log in once more'));
  }

  /** Processes all changes collected so far. Exposed for benchmarks (synchronous delivery). */
  flush(): void {
    this.flushScheduled = false;
    const pending = [...this.pending];
    this.pending.clear();
    for (const [accountId, affected] of pending) {
      const sessions = this.byAccount.get(accountId);
      if (!sessions || sessions.size === 0) continue;
      let state: AccountState;
      try {
        state = this.manager.accountState(accountId);
      } catch {
        continue;
      }
      const fwd = forwarderPort(state);
      const targets: SyncSession[] = [];
      if (affected === 'all') targets.push(...sessions);
      else for (const id of affected) {
        const s = this.sessions.get(id);
        if (s && s.accountId === accountId) targets.push(s);
      }
      for (const s of targets) {
        this.refreshFlow(s, state);
        this.notify(s, state, fwd);
      }
    }
  }

  private notify(s: SyncSession, state: AccountState, fwd: number): void {
    if (s.closed) return;
    if (s.windowTimer) {
      s.dirty = true;
      // Debounce: restart the quiet period, unless the burst has already been held back maxDelayMs.
      if (this.manager.now() - s.windowStart < this.maxDelayMs) {
        clearTimeout(s.windowTimer);
        s.windowTimer = this.windowTimer(s, Math.min(this.debounceMs, Math.max(0, s.windowStart + this.maxDelayMs - this.manager.now())));
      }
      return;
    }
    if (this.sendMapIfChanged(s, state, fwd)) {
      s.windowStart = this.manager.now();
      s.windowTimer = this.windowTimer(s, this.debounceMs);
    }
  }

  private windowTimer(s: SyncSession, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => this.windowEnd(s), ms);
    t.unref();
    return t;
  }

  private windowEnd(s: SyncSession): void {
    s.windowTimer = undefined;
    if (s.closed) return;
    const configs = s.queuedConfigs;
    s.queuedConfigs = [];
    for (const c of configs) {
      s.sink.send(c);
      this.stats.configsSent++;
    }
    if (!s.dirty) return;
    s.dirty = false;
    let state: AccountState;
    try {
      state = this.manager.accountState(s.accountId);
    } catch {
      return;
    }
    if (this.sendMapIfChanged(s, state, forwarderPort(state))) {
      s.windowStart = this.manager.now();
      s.windowTimer = this.windowTimer(s, this.debounceMs);
    }
  }

  private sendMapIfChanged(s: SyncSession, state: AccountState, fwd: number): boolean {
    const peer = state.peers.get(s.peerId);
    if (!peer) return false;
    const map = encodeNetworkMap(state, peer, this.manager.now(), fwd);
    this.stats.mapsComputed++;
    if (map.digest === s.lastDigest) return false;
    s.lastDigest = map.digest;
    s.sink.send(encodeSyncResponse(map, state.account.serial, peer, sessionExpiresAt(state, peer), undefined));
    this.stats.mapsSent++;
    return true;
  }
}
