import type { FlowSwitch, NetbirdConfigBuilder } from './config.js';
import type { Affected, ChangeListener, PeerRef } from './core.js';
import type { AccountManager } from './manager.js';
import { encodeConfigOnly, encodeDeletedPeerResponse, encodeNetworkMap, encodeSyncResponse, forwarderPort, sessionExpiresAt } from './networkmap.js';
import type { AccountState } from './state.js';
import { FramePool } from './frame-pool.js';
import type { Peer } from './types.js';
import { ManagementError } from './types.js';

/**
 * Live network-map delivery to connected Sync streams (protocol.md §4.5).
 *
 * Changes reported by the AccountManager only mark the affected connected sessions dirty; maps are
 * computed later, when a session is taken from the run queue, so a burst of changes costs one map per
 * peer and a map always shows the newest state. Delivery is flow-controlled: a stream has at most
 * one map in flight (the next one is computed only after the transport took the previous one), and
 * all streams together keep at most `maxInFlightBytes` of encoded maps waiting in the transport, so
 * memory stays bounded however many streams there are and however slowly they read. The queue is
 * worked in slices of `sliceMs`, giving logins, REST and keepalives their turn between slices.
 * Only peers whose map really changed (digest of the last map sent) get a message. Per peer, the
 * first update goes out at once; further updates within `debounceMs` of each other are merged (only
 * the newest map is sent when the burst goes quiet, or after `maxDelayMs` at the latest), while
 * credential refreshes queue in order.
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
  /**
   * `frame` holds a plaintext SyncResponse after SYNC_HEADROOM free bytes (see wire.ts
   * sealFrameInPlace). `written` is called once the transport has taken the frame (its write
   * callback), which is what lets the hub send the next map of this stream.
   */
  send(frame: Buffer, written: () => void): void;
  /**
   * True when the transport keeps no reference to a frame once its `written` ran, so the hub may
   * reuse the frame's memory for a later map (FramePool). Sinks that keep frames leave it unset.
   */
  readonly recyclesFrames?: boolean;
  /** Ends the stream: normally, or with the given error. */
  end(error?: ManagementError): void;
}

export interface UpdateHubOptions {
  debounceMs?: number;
  maxDelayMs?: number;
  /** Bound on encoded maps handed to streams but not yet taken by their transport (default 64 MiB). */
  maxInFlightBytes?: number;
  /** Longest stretch of map work before the event loop gets a turn (default 15 ms). */
  sliceMs?: number;
  /** Memory of written frames kept for reuse (default 64 MiB, see frame-pool.ts). */
  framePoolBytes?: number;
  /** Frames in SharedArrayBuffers, for a seal worker (seal-worker.ts); default false. */
  sharedFrames?: boolean;
}

export interface UpdateHubStats {
  connected: number;
  mapsComputed: number;
  mapsSent: number;
  configsSent: number;
  /** Encoded maps handed to transports and not yet taken (bytes), and the most there ever was. */
  inFlightBytes: number;
  inFlightPeakBytes: number;
  /** Sessions waiting in the run queue. */
  queued: number;
}

/** Resolution of the coalescing windows' end (they last debounceMs, 1 s by default). */
const WINDOW_TICK_MS = 10;

function flowKeyOf(sw: FlowSwitch): string {
  return sw.enabled ? (sw.counters ? 'on+counters' : 'on') : 'off';
}

export class SyncSession {
  lastDigest = '';
  /** The first message (full map + NetbirdConfig) has not gone out yet. */
  initial = true;
  /** Bytes of this stream's frames not yet taken by the transport; a map waits while > 0. */
  inFlight = 0;
  /** The traffic-event switch this peer was last told (see refreshFlow). */
  flowKey = '';
  closed = false;
  /**
   * When the open coalescing window ends (performance.now() ms; 0 = no window): further map
   * updates wait for it. Both times start as -0, which equals 0 but is not a small integer: a field
   * whose first value is one gets V8's integer representation, and the first real time (a double)
   * would then replace the hidden class of every session at once, deoptimizing the delivery code on
   * the first change after a restart.
   */
  windowEnd = -0;
  windowStart = -0;
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
  /** Sessions whose map may have changed, in the order they became dirty (Set keeps insertion order). */
  private readonly runQueue = new Set<SyncSession>();
  private flushScheduled = false;
  private pumpScheduled = false;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly maxInFlightBytes: number;
  private readonly sliceMs: number;
  private readonly unsubscribe: () => void;
  private readonly frames: FramePool;
  /** Sessions whose coalescing window ends in a tick, by tick (see openWindow). */
  private readonly windowTicks = new Map<number, SyncSession[]>();
  private readonly takeFrame: (size: number) => Buffer;
  readonly stats: UpdateHubStats = { connected: 0, mapsComputed: 0, mapsSent: 0, configsSent: 0, inFlightBytes: 0, inFlightPeakBytes: 0, queued: 0 };

  constructor(
    private readonly manager: AccountManager,
    private readonly infra: NetbirdConfigBuilder,
    options: UpdateHubOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.maxInFlightBytes = options.maxInFlightBytes ?? 64 * 1024 * 1024;
    this.sliceMs = options.sliceMs ?? 15;
    this.frames = new FramePool(options.framePoolBytes ?? 64 * 1024 * 1024, options.sharedFrames ?? false);
    this.takeFrame = (size) => this.frames.take(size);
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
   * Registers a Sync stream for an authenticated, registered peer; its first message (full map +
   * NetbirdConfig) goes out from the run queue like every other map. A newer stream of the same peer
   * replaces the older one.
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
      this.remove(old);
      this.sessions.set(s.peerId, s);
      old.sink.end(undefined);
    }
    this.stats.connected = this.sessions.size;
    s.dirty = true;
    this.enqueue(s);
    this.armRefresh(s);
    return s;
  }

  /** The stream ended (client went away). Returns true if it was the peer's current stream. */
  close(s: SyncSession): boolean {
    if (this.sessions.get(s.peerId) !== s) {
      this.release(s);
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

  /**
   * Works the run queue to the end now, ignoring time slices and the in-flight bound (benchmarks
   * and tests that want synchronous delivery).
   */
  drain(): void {
    this.flush();
    this.pump(Infinity, Infinity);
  }

  /** Forgets a session's timers, queue place and in-flight bytes; it sends nothing more. */
  private release(s: SyncSession): void {
    this.clearTimers(s);
    s.closed = true;
    if (this.runQueue.delete(s)) this.stats.queued = this.runQueue.size;
    this.stats.inFlightBytes -= s.inFlight;
    s.inFlight = 0;
    s.queuedConfigs = [];
    if (this.stats.inFlightBytes < this.maxInFlightBytes && this.runQueue.size > 0) this.schedulePump();
  }

  private remove(s: SyncSession): void {
    this.release(s);
    if (this.sessions.get(s.peerId) === s) this.sessions.delete(s.peerId);
    this.byAccount.get(s.accountId)?.delete(s);
    this.stats.connected = this.sessions.size;
  }

  private drop(s: SyncSession, error: ManagementError | undefined): void {
    this.remove(s);
    s.sink.end(error);
  }

  private clearTimers(s: SyncSession): void {
    s.windowEnd = 0;
    for (const t of s.timers) clearInterval(t);
    s.timers.length = 0;
  }

  /** Hands a frame to the session's transport, counting it in flight until the transport took it. */
  private write(s: SyncSession, frame: Buffer): void {
    const size = frame.length;
    s.inFlight += size;
    const st = this.stats;
    st.inFlightBytes += size;
    if (st.inFlightBytes > st.inFlightPeakBytes) st.inFlightPeakBytes = st.inFlightBytes;
    let done = false;
    s.sink.send(frame, () => {
      if (done || s.closed) return;
      done = true;
      if (s.sink.recyclesFrames) this.frames.give(frame);
      s.inFlight -= size;
      st.inFlightBytes -= size;
      // The stream can take its next map; others may have waited for room.
      if (s.inFlight === 0 && s.dirty && s.windowEnd === 0) this.enqueue(s);
      else if (this.runQueue.size > 0) this.schedulePump();
    });
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
    // The first message is built later and carries the switch as it is then.
    if (s.closed || s.initial) return;
    const peer = state.peers.get(s.peerId);
    if (!peer) return;
    const sw = flowSwitchFor(state, peer);
    const key = flowKeyOf(sw);
    if (key === s.flowKey) return;
    s.flowKey = key;
    this.enqueueConfig(s, encodeConfigOnly(this.infra.refresh(false, sw)));
  }

  private enqueueConfig(s: SyncSession, msg: Buffer): void {
    if (s.closed) return;
    // Behind a held-back map, or before the first message: keep the order.
    if (s.windowEnd !== 0 || s.initial) {
      s.queuedConfigs.push(msg);
      return;
    }
    this.write(s, msg);
    this.stats.configsSent++;
  }

  private sendQueuedConfigs(s: SyncSession): void {
    const configs = s.queuedConfigs;
    s.queuedConfigs = [];
    for (const c of configs) {
      this.write(s, c);
      this.stats.configsSent++;
    }
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
    this.remove(s);
    if (state) {
      s.sink.send(encodeDeletedPeerResponse(state, peer, state.account.serial, forwarderPort(state)), () => {});
      this.stats.mapsSent++;
    }
    s.sink.end(undefined);
  }

  peerLoginExpired(_accountId: string, peer: Peer): void {
    const s = this.sessions.get(peer.id);
    if (s) this.drop(s, new ManagementError('permission_denied', 'peer login has expired, please log in once more'));
  }

  /** Marks the sessions of all changes collected so far dirty (cheap: no map is computed here). */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.size === 0) return;
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
      const mark = (s: SyncSession): void => {
        this.refreshFlow(s, state);
        this.notify(s);
      };
      if (affected === 'all') for (const s of sessions) mark(s);
      else for (const id of affected) {
        const s = this.sessions.get(id);
        if (s && s.accountId === accountId) mark(s);
      }
    }
  }

  private notify(s: SyncSession): void {
    if (s.closed) return;
    s.dirty = true;
    if (s.windowEnd !== 0) {
      // Debounce: restart the quiet period, unless the burst has already been held back maxDelayMs.
      if (this.manager.now() - s.windowStart < this.maxDelayMs) {
        this.openWindow(s, Math.min(this.debounceMs, Math.max(0, s.windowStart + this.maxDelayMs - this.manager.now())));
      }
      return;
    }
    if (s.inFlight === 0) this.enqueue(s);
    // else: the write callback of the map in flight queues it.
  }

  private enqueue(s: SyncSession): void {
    if (s.closed || this.runQueue.has(s)) return;
    this.runQueue.add(s);
    this.stats.queued = this.runQueue.size;
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump(this.sliceMs, this.maxInFlightBytes);
    });
  }

  /**
   * Computes and sends maps for queued sessions, oldest first, until the slice is used up or the
   * in-flight bound is reached (a write callback resumes it then). One account state lookup per
   * account and slice.
   */
  private pump(sliceMs: number, maxInFlight: number): void {
    const deadline = performance.now() + sliceMs;
    const states = new Map<string, { state: AccountState; fwd: number } | undefined>();
    for (const s of this.runQueue) {
      if (this.stats.inFlightBytes >= maxInFlight) break;
      this.runQueue.delete(s);
      if (s.closed || !s.dirty) continue;
      if (s.inFlight > 0 || s.windowEnd !== 0) continue; // requeued by its write callback / window end
      let ctx = states.get(s.accountId);
      if (!states.has(s.accountId)) {
        try {
          const state = this.manager.accountState(s.accountId);
          ctx = { state, fwd: forwarderPort(state) };
        } catch {
          ctx = undefined;
        }
        states.set(s.accountId, ctx);
      }
      s.dirty = false;
      if (ctx) this.deliver(s, ctx.state, ctx.fwd);
      if (performance.now() >= deadline) break;
    }
    this.stats.queued = this.runQueue.size;
    if (this.runQueue.size > 0 && this.stats.inFlightBytes < maxInFlight) this.schedulePump();
  }

  private deliver(s: SyncSession, state: AccountState, fwd: number): void {
    const peer = state.peers.get(s.peerId);
    if (!peer) return;
    const map = encodeNetworkMap(state, peer, this.manager.now(), fwd);
    this.stats.mapsComputed++;
    if (s.initial) {
      s.initial = false;
      s.lastDigest = map.digest;
      const sw = flowSwitchFor(state, peer);
      s.flowKey = flowKeyOf(sw);
      this.write(s, encodeSyncResponse(map, state.account.serial, peer, sessionExpiresAt(state, peer), this.infra.full(true, sw), this.takeFrame));
      this.stats.mapsSent++;
      this.sendQueuedConfigs(s);
      return;
    }
    if (map.digest === s.lastDigest) return;
    s.lastDigest = map.digest;
    this.write(s, encodeSyncResponse(map, state.account.serial, peer, sessionExpiresAt(state, peer), undefined, this.takeFrame));
    this.stats.mapsSent++;
    s.windowStart = this.manager.now();
    this.openWindow(s, this.debounceMs);
  }

  /**
   * (Re)opens `s`'s coalescing window for `ms`. Windows share one timer per WINDOW_TICK_MS tick
   * rather than one per session: a change reaching thousands of peers opens thousands of windows
   * at once. A session whose window moved on is skipped when its old tick fires.
   */
  private openWindow(s: SyncSession, ms: number): void {
    const end = performance.now() + ms;
    s.windowEnd = end;
    const tick = Math.ceil(end / WINDOW_TICK_MS);
    const due = this.windowTicks.get(tick);
    if (due) {
      due.push(s);
      return;
    }
    this.windowTicks.set(tick, [s]);
    const t = setTimeout(() => this.windowTick(tick), Math.max(0, Math.ceil(tick * WINDOW_TICK_MS - performance.now())));
    t.unref();
  }

  private windowTick(tick: number): void {
    const due = this.windowTicks.get(tick);
    this.windowTicks.delete(tick);
    if (!due) return;
    for (const s of due) {
      if (s.windowEnd !== 0 && Math.ceil(s.windowEnd / WINDOW_TICK_MS) === tick) this.closeWindow(s);
    }
  }

  private closeWindow(s: SyncSession): void {
    s.windowEnd = 0;
    if (s.closed) return;
    this.sendQueuedConfigs(s);
    if (s.dirty && s.inFlight === 0) this.enqueue(s);
  }
}
