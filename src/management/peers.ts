import { ACT } from './audit.js';
import type { Affected, ManagerCore, PeerRef } from './core.js';
import { isLoginExpired } from './networkmap.js';
import { accountObjects } from './objects.js';
import { setupKeyState } from './setup-keys.js';
import { AccountState } from './state.js';
import type { AuditEvent, Peer, PeerLocation, PeerMeta, SetupKey } from './types.js';
import { ManagementError, emptyPeerMeta } from './types.js';
import { allocateIp, dnsLabelFromHostname, hashSetupKey, isValidDnsLabel, newId, uniqueDnsLabel } from './util.js';

/** Connection-status writes are batched this long (see updatePeerRuntime). */
const STATUS_FLUSH_MS = 500;

export interface PeerUpdateInput {
  name?: string;
  sshEnabled?: boolean;
  loginExpirationEnabled?: boolean;
  inactivityExpirationEnabled?: boolean;
  approvalRequired?: boolean;
}

export interface LoginInput {
  /** WireGuard public key (already validated and authenticated by the envelope). */
  peerKey: string;
  setupKey?: string;
  /** Owner resolved from a validated JWT, if any (JWT validation itself is outside this class). */
  jwtUserId?: string;
  meta: PeerMeta;
  sshKey?: string;
  dnsLabels?: string[];
  /** Public address of the login and its place (geolocation posture checks, the peers API). */
  location?: PeerLocation;
}

function hasGeoChecks(state: AccountState): boolean {
  for (const c of accountObjects(state).postureChecks.values()) if ((c.checks as Record<string, unknown>).geo_location_check) return true;
  return false;
}

/** An unknown new location (no address seen) keeps the old one. */
function sameLocation(next: PeerLocation | undefined, cur: PeerLocation | undefined): boolean {
  if (!next) return true;
  return !!cur && next.connectionIp === cur.connectionIp && next.countryCode === cur.countryCode && next.cityName === cur.cityName;
}

function metaEqual(a: PeerMeta, b: PeerMeta): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Peers: admin reads and edits, and the gRPC side (login and registration with a setup key or a JWT
 * user, Sync streams opening and ending, connection status, logout), ephemeral clean-up and login
 * expiration.
 */
export class Peers {
  private readonly ephemeralTimers = new Map<string, NodeJS.Timeout>();
  private readonly expiredNotified = new Set<string>();
  private expirationTimer: NodeJS.Timeout | undefined;
  private readonly pendingStatus = new Map<string, { connected: boolean; lastSeen: number }>();
  private statusTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly core: ManagerCore) {}

  /**
   * Start-up after the accounts are loaded: resets connection state, re-arms ephemeral clean-up and
   * starts the periodic login-expiration check.
   */
  async resume(expirationCheckMs: number): Promise<void> {
    // Nobody is connected to a server that just started; persisted "connected" flags are stale
    // (one UPDATE: thousands of single-row fsynced writes would stall start-up after a crash).
    const now = this.core.now();
    await this.core.store.resetConnectedPeers(now);
    for (const state of this.core.accounts.values()) {
      for (const p of state.peers.values()) {
        if (p.connected) {
          p.connected = false;
          p.lastSeen = now;
        }
        if (p.ephemeral) this.armEphemeral(state.id, p);
        if (isLoginExpired(state, p, now)) this.expiredNotified.add(p.id);
      }
    }
    this.expirationTimer = setInterval(() => void this.checkLoginExpiration(), expirationCheckMs);
    this.expirationTimer.unref();
  }

  /** Stops timers; the store stays open (its owner closes it). */
  close(): void {
    this.closed = true;
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    if (this.expirationTimer) clearInterval(this.expirationTimer);
    for (const t of this.ephemeralTimers.values()) clearTimeout(t);
    this.ephemeralTimers.clear();
  }

  /** Forgets a deleted peer (key index, ephemeral timer, expiry notice) and tells the listeners. */
  forget(accountId: string, peer: Peer): void {
    this.core.peerAccount.delete(peer.key);
    this.disarmEphemeral(peer.id);
    this.expiredNotified.delete(peer.id);
    this.core.peerDeleted(accountId, peer);
  }

  // ----- admin side (REST) -----
  listPeers(accountId: string): Peer[] {
    return [...this.core.accountState(accountId).peers.values()];
  }

  getPeer(accountId: string, peerId: string): Peer {
    const p = this.core.accountState(accountId).peers.get(peerId);
    if (!p) throw new ManagementError('not_found', `peer ${peerId} not found`);
    return p;
  }

  /** Groups of a peer (ids). */
  peerGroups(accountId: string, peerId: string): string[] {
    return [...(this.core.accountState(accountId).peerGroups.get(peerId) ?? [])];
  }

  /** Peers `peerId` can reach (REST `accessible-peers`). */
  accessiblePeers(accountId: string, peerId: string): Peer[] {
    const state = this.core.accountState(accountId);
    this.getPeer(accountId, peerId);
    return [...state.visiblePeers(peerId)].map((id) => state.peers.get(id)!).filter(Boolean);
  }

  findPeerByKey(key: string): PeerRef | undefined {
    const accountId = this.core.peerAccount.get(key);
    if (!accountId) return undefined;
    const state = this.core.accounts.get(accountId);
    const peer = state?.peersByKey.get(key);
    return state && peer ? { state, peer } : undefined;
  }

  async updatePeer(accountId: string, peerId: string, input: PeerUpdateInput): Promise<Peer> {
    const state = this.core.accountState(accountId);
    const old = this.getPeer(accountId, peerId);
    const next: Peer = { ...old };
    const events: Omit<AuditEvent, 'id' | 'accountId' | 'timestamp'>[] = [];
    if (input.name !== undefined && input.name !== old.name) {
      const name = input.name.trim();
      if (name === '') throw new ManagementError('unprocessable', 'peer name must not be empty');
      next.name = name;
      const taken = new Set(state.usedLabels);
      taken.delete(old.dnsLabel);
      next.dnsLabel = uniqueDnsLabel(dnsLabelFromHostname(name), taken);
      events.push({ activityCode: ACT.peerRename, initiatorId: '', targetId: peerId, meta: { name } });
    }
    if (input.sshEnabled !== undefined && input.sshEnabled !== old.sshEnabled) {
      next.sshEnabled = input.sshEnabled;
      events.push({ activityCode: input.sshEnabled ? ACT.peerSshEnable : ACT.peerSshDisable, initiatorId: '', targetId: peerId, meta: {} });
    }
    if (input.loginExpirationEnabled !== undefined) next.loginExpirationEnabled = input.loginExpirationEnabled;
    if (input.inactivityExpirationEnabled !== undefined) next.inactivityExpirationEnabled = input.inactivityExpirationEnabled;
    if (input.approvalRequired !== undefined) next.approvalRequired = input.approvalRequired;
    return this.core.change(accountId, async (q) => {
      await q.updatePeer(next);
      return {
        result: next,
        events,
        apply: () => {
          state.putPeer(next);
          const affected = state.visiblePeers(peerId);
          affected.add(peerId);
          return affected;
        },
      };
    });
  }

  async deletePeer(accountId: string, peerId: string, initiatorId = ''): Promise<void> {
    const state = this.core.accountState(accountId);
    const old = this.getPeer(accountId, peerId);
    await this.core.change(accountId, async (q) => {
      await q.deletePeer(peerId);
      return {
        result: undefined,
        events: [{ activityCode: ACT.userPeerDelete, initiatorId, targetId: peerId, meta: { name: old.name, ip: old.ip } }],
        apply: () => {
          const affected = state.visiblePeers(peerId);
          state.removePeer(peerId);
          this.forget(accountId, old);
          return affected;
        },
      };
    });
  }

  // ----- gRPC side -----
  /**
   * Login (protocol.md §4.3): a known key logs in (meta refreshed, expiry checked); an unknown key
   * registers with a setup key or a JWT user.
   */
  async loginPeer(input: LoginInput): Promise<PeerRef> {
    const known = this.findPeerByKey(input.peerKey);
    if (known) return this.loginKnownPeer(known, input);
    if (input.jwtUserId) return this.registerWithUser(input);
    if (input.setupKey && input.setupKey.trim() !== '') return this.registerWithSetupKey(input);
    throw new ManagementError('permission_denied', 'peer is not registered: no peer auth method provided, please log in with a setup key or SSO');
  }

  private async loginKnownPeer(ref: PeerRef, input: LoginInput): Promise<PeerRef> {
    const { state } = ref;
    const accountId = state.id;
    // Fast path: a plain re-login that changes nothing (the usual case when clients reconnect after a
    // server restart) is answered from memory, without a write or a serial bump.
    if (!input.jwtUserId && (!input.dnsLabels || input.dnsLabels.length === 0)) {
      const peer = state.peers.get(ref.peer.id);
      // Where a peer is matters to others only through geolocation posture checks; otherwise a new
      // place is noted in memory without a change (reconnects after a restart stay cheap).
      if (peer && !sameLocation(input.location, peer.location) && !hasGeoChecks(state)) peer.location = input.location;
      if (
        peer &&
        !(peer.userId && (state.users.get(peer.userId)?.blocked || isLoginExpired(state, peer, this.core.now()))) &&
        (input.sshKey === undefined || input.sshKey === peer.sshKey) &&
        metaEqual(this.mergeMeta(peer.meta, input.meta), peer.meta) &&
        sameLocation(input.location, peer.location)
      ) {
        return { state, peer };
      }
    }
    return this.core.change(accountId, async (q, _s, now) => {
      const peer = state.peers.get(ref.peer.id);
      if (!peer) throw new ManagementError('permission_denied', 'peer is not registered');
      if (peer.userId) {
        if (state.users.get(peer.userId)?.blocked) throw new ManagementError('permission_denied', 'user is blocked');
        if (input.jwtUserId && input.jwtUserId !== peer.userId) throw new ManagementError('permission_denied', 'peer is registered by another user');
        if (!input.jwtUserId && isLoginExpired(state, peer, now)) {
          throw new ManagementError('permission_denied', 'peer login has expired, please log in once more');
        }
      }
      const next: Peer = { ...peer, meta: this.mergeMeta(peer.meta, input.meta) };
      if (input.location) next.location = input.location;
      if (input.sshKey !== undefined && input.sshKey !== peer.sshKey) next.sshKey = input.sshKey;
      if (input.dnsLabels && input.dnsLabels.length > 0 && JSON.stringify(input.dnsLabels) !== JSON.stringify(peer.extraDnsLabels)) {
        const key = peer.setupKeyId ? state.setupKeys.get(peer.setupKeyId) : undefined;
        if (!key?.allowExtraDnsLabels) throw new ManagementError('failed_precondition', 'extra DNS labels are not allowed for this peer');
        next.extraDnsLabels = this.checkExtraLabels(input.dnsLabels);
      }
      if (input.jwtUserId) {
        next.lastLogin = now;
        this.expiredNotified.delete(peer.id);
      }
      await q.updatePeer(next);
      const events = input.jwtUserId ? [{ activityCode: ACT.userPeerLogin, initiatorId: input.jwtUserId, targetId: peer.id, meta: {} }] : [];
      return {
        result: { state, peer: next },
        events,
        apply: () => {
          const visibleChange =
            next.sshKey !== peer.sshKey ||
            next.meta.netbirdVersion !== peer.meta.netbirdVersion ||
            JSON.stringify(next.extraDnsLabels) !== JSON.stringify(peer.extraDnsLabels) ||
            next.lastLogin !== peer.lastLogin;
          state.putPeer(next);
          // A new place can change geolocation posture checks, so whom the peer reaches.
          if (!sameLocation(next.location, peer.location) && hasGeoChecks(state)) return 'all';
          const affected = visibleChange ? state.visiblePeers(peer.id) : new Set<string>();
          affected.add(peer.id);
          return affected;
        },
      };
    });
  }

  private checkExtraLabels(labels: string[]): string[] {
    const out = [...new Set(labels.map((l) => l.trim().toLowerCase()))];
    for (const l of out) if (!isValidDnsLabel(l)) throw new ManagementError('invalid_argument', `invalid DNS label ${JSON.stringify(l)}`);
    return out;
  }

  private mergeMeta(old: PeerMeta, incoming: PeerMeta): PeerMeta {
    // An empty uiVersion never overwrites a stored one (protocol.md §4.5).
    return { ...incoming, uiVersion: incoming.uiVersion || old.uiVersion };
  }

  private async registerWithSetupKey(input: LoginInput): Promise<PeerRef> {
    const hash = hashSetupKey(input.setupKey!);
    const invalid = (): ManagementError => new ManagementError('not_found', "couldn't add peer: setup key is invalid");
    const ref = this.core.keyHashIndex.get(hash) ?? (await this.adoptSetupKey(hash));
    if (!ref) throw invalid();
    const state = this.core.accountState(ref.accountId);
    return this.core.change(ref.accountId, async (q, _s, now) => {
      const key = state.setupKeys.get(ref.id);
      if (!key || setupKeyState(key, now) !== 'valid') throw invalid();
      if (this.findPeerByKey(input.peerKey)) throw new ManagementError('failed_precondition', 'peer is already registered');
      let extra: string[] = [];
      if (input.dnsLabels && input.dnsLabels.length > 0) {
        if (!key.allowExtraDnsLabels) throw new ManagementError('failed_precondition', 'extra DNS labels are not allowed by this setup key');
        extra = this.checkExtraLabels(input.dnsLabels);
      }
      // The check above is advisory; this conditional update is what makes a use count exactly once.
      if (!(await q.consumeSetupKey(key.id, now))) throw invalid();
      const peer = this.newPeer(state, input, now, { setupKeyId: key.id, ephemeral: key.ephemeral, extraDnsLabels: extra, userId: '' });
      await q.insertPeer(peer);
      const groups = [state.allGroupId, ...key.autoGroups.filter((g) => state.groups.has(g))];
      for (const gid of groups) await q.addGroupPeers(state.id, gid, [peer.id]);
      const usedKey: SetupKey = { ...key, usedTimes: key.usedTimes + 1, lastUsed: now };
      return {
        result: { state, peer },
        events: [{ activityCode: ACT.peerSetupKeyAdd, initiatorId: key.id, targetId: peer.id, meta: { name: peer.name, ip: peer.ip } }],
        apply: () => this.applyNewPeer(state, peer, groups, () => state.setupKeys.set(key.id, usedKey)),
      };
    });
  }

  /**
   * A key unknown in memory may have been created by another process on the same store (e.g.
   * `netbird-server setup-keys create` next to a running server): look it up and adopt it, loading
   * its account if that is new as well.
   */
  private async adoptSetupKey(hash: string): Promise<{ accountId: string; id: string } | undefined> {
    const key = await this.core.store.findSetupKeyByHash(hash);
    if (!key) return undefined;
    return this.core.globalLock.run(async () => {
      let state = this.core.accounts.get(key.accountId);
      if (!state) {
        const data = await this.core.store.loadAccount(key.accountId);
        if (!data) return undefined;
        state = new AccountState(data);
        this.core.index(state, data.objects);
      } else if (!state.setupKeys.has(key.id)) {
        state.setupKeys.set(key.id, key);
        this.core.keyHashIndex.set(key.keyHash, { accountId: key.accountId, id: key.id });
      }
      return { accountId: key.accountId, id: key.id };
    });
  }

  private async registerWithUser(input: LoginInput): Promise<PeerRef> {
    const accountId = [...this.core.accounts.values()].find((s) => s.users.has(input.jwtUserId!))?.id;
    if (!accountId) throw new ManagementError('permission_denied', 'user is not known to this server');
    const state = this.core.accountState(accountId);
    return this.core.change(accountId, async (q, _s, now) => {
      const user = state.users.get(input.jwtUserId!)!;
      if (user.blocked) throw new ManagementError('permission_denied', 'user is blocked');
      if (this.findPeerByKey(input.peerKey)) throw new ManagementError('failed_precondition', 'peer is already registered');
      const peer = this.newPeer(state, input, now, { setupKeyId: '', ephemeral: false, extraDnsLabels: [], userId: user.id });
      await q.insertPeer(peer);
      const groups = [state.allGroupId, ...user.autoGroups.filter((g) => state.groups.has(g))];
      for (const gid of groups) await q.addGroupPeers(state.id, gid, [peer.id]);
      return {
        result: { state, peer },
        events: [{ activityCode: ACT.peerUserAdd, initiatorId: user.id, targetId: peer.id, meta: { name: peer.name, ip: peer.ip } }],
        apply: () => this.applyNewPeer(state, peer, groups),
      };
    });
  }

  private newPeer(state: AccountState, input: LoginInput, now: number, extra: Pick<Peer, 'setupKeyId' | 'ephemeral' | 'extraDnsLabels' | 'userId'>): Peer {
    const hostname = input.meta.hostname || 'peer';
    return {
      id: newId(),
      accountId: state.id,
      key: input.peerKey,
      ip: allocateIp(state.account.network, state.usedIps),
      dnsLabel: uniqueDnsLabel(dnsLabelFromHostname(hostname), state.usedLabels),
      extraDnsLabels: extra.extraDnsLabels,
      name: hostname,
      sshKey: input.sshKey ?? '',
      sshEnabled: false,
      meta: { ...emptyPeerMeta(), ...input.meta },
      userId: extra.userId,
      setupKeyId: extra.setupKeyId,
      ephemeral: extra.ephemeral,
      loginExpirationEnabled: extra.userId !== '',
      inactivityExpirationEnabled: false,
      approvalRequired: false,
      connected: false,
      lastSeen: now,
      lastLogin: now,
      createdAt: now,
      location: input.location,
    };
  }

  private applyNewPeer(state: AccountState, peer: Peer, groups: string[], more?: () => void): Affected {
    state.putPeer(peer);
    for (const gid of groups) state.addPeerToGroup(gid, peer.id);
    this.core.peerAccount.set(peer.key, state.id);
    more?.();
    if (peer.ephemeral) this.armEphemeral(state.id, peer);
    return state.visiblePeers(peer.id);
  }

  /** Sync stream opening: peer must exist and not be expired; stores meta, marks it connected. */
  async syncPeer(peerKey: string, meta: PeerMeta | undefined): Promise<PeerRef> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) throw new ManagementError('permission_denied', 'peer is not registered');
    const { state } = ref;
    if (isLoginExpired(state, ref.peer, this.core.now())) throw new ManagementError('permission_denied', 'peer login has expired, please log in once more');
    const owner = ref.peer.userId ? state.users.get(ref.peer.userId) : undefined;
    if (owner?.blocked) throw new ManagementError('permission_denied', 'user is blocked');
    this.disarmEphemeral(ref.peer.id);
    return this.updatePeerRuntime(ref, meta && meta.hostname !== '' ? meta : undefined, true);
  }

  /** SyncMeta: refresh stored meta (FailedPrecondition without meta is the caller's check). */
  async syncMeta(peerKey: string, meta: PeerMeta): Promise<PeerRef> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) throw new ManagementError('permission_denied', 'peer is not registered');
    return this.updatePeerRuntime(ref, meta, undefined);
  }

  /**
   * Meta and connection status updates. Status alone does not change anybody's map, so it does not
   * bump the serial; a meta change that others can see (agent version) is a real change.
   */
  private async updatePeerRuntime(ref: PeerRef, meta: PeerMeta | undefined, connected: boolean | undefined): Promise<PeerRef> {
    const { state } = ref;
    const peer = state.peers.get(ref.peer.id) ?? ref.peer;
    const nextMeta = meta ? this.mergeMeta(peer.meta, meta) : peer.meta;
    if (!metaEqual(nextMeta, peer.meta)) {
      return this.core.change(state.id, async (q, _s, now) => {
        const cur = state.peers.get(peer.id);
        if (!cur) throw new ManagementError('permission_denied', 'peer is not registered');
        const next: Peer = { ...cur, meta: nextMeta, connected: connected ?? cur.connected, lastSeen: now };
        await q.updatePeer(next);
        // This write carries the current status; an older queued one must not overwrite it.
        this.pendingStatus.delete(cur.id);
        return {
          result: { state, peer: next },
          apply: () => {
            state.putPeer(next);
            const affected =
              next.meta.netbirdVersion !== cur.meta.netbirdVersion ? state.visiblePeers(peer.id) : new Set<string>();
            affected.add(peer.id);
            return affected;
          },
        };
      });
    }
    if (connected === undefined) return { state, peer };
    const cur = state.peers.get(peer.id);
    if (!cur) throw new ManagementError('permission_denied', 'peer is not registered');
    const now = this.core.now();
    // Status is not part of any encoded fragment, so the peer's cache stays valid. It is runtime
    // state (reset at start-up), so it is written behind in batches: a reconnect storm of thousands
    // of peers must not queue one fsynced transaction per peer in front of their first maps.
    cur.connected = connected;
    cur.lastSeen = now;
    this.pendingStatus.set(cur.id, { connected, lastSeen: now });
    this.scheduleStatusFlush();
    return { state, peer: cur };
  }

  private scheduleStatusFlush(): void {
    if (this.statusTimer || this.closed) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.flushStatus().catch(() => undefined);
    }, STATUS_FLUSH_MS);
    this.statusTimer.unref();
  }

  /** Writes pending connection-status changes (also called on shutdown, before the store closes). */
  async flushStatus(): Promise<void> {
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    if (this.pendingStatus.size === 0) return;
    const batch = [...this.pendingStatus];
    this.pendingStatus.clear();
    await this.core.store.transaction(async (q) => {
      for (const [id, st] of batch) await q.setPeerStatus(id, st.connected, st.lastSeen);
    });
  }

  /** A Sync stream ended. Ephemeral peers start their deletion countdown. */
  async peerDisconnected(peerKey: string): Promise<void> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) return;
    await this.updatePeerRuntime(ref, undefined, false);
    if (ref.peer.ephemeral) this.armEphemeral(ref.state.id, ref.state.peers.get(ref.peer.id) ?? ref.peer);
  }

  /** Logout: the peer is deleted (protocol.md §4.2). */
  async logoutPeer(peerKey: string): Promise<void> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) throw new ManagementError('not_found', 'peer not found');
    await this.deletePeer(ref.state.id, ref.peer.id, ref.peer.userId);
  }

  // ----- ephemeral peers -----
  private armEphemeral(accountId: string, peer: Peer): void {
    this.disarmEphemeral(peer.id);
    if (peer.connected || this.closed) return;
    const delay = Math.max(0, peer.lastSeen + this.core.ephemeralTimeoutMs - this.core.now());
    const t = setTimeout(() => {
      this.ephemeralTimers.delete(peer.id);
      const state = this.core.accounts.get(accountId);
      const cur = state?.peers.get(peer.id);
      if (!cur || cur.connected) return;
      this.deletePeer(accountId, peer.id).catch(() => undefined);
    }, delay);
    t.unref();
    this.ephemeralTimers.set(peer.id, t);
  }

  private disarmEphemeral(peerId: string): void {
    const t = this.ephemeralTimers.get(peerId);
    if (t) clearTimeout(t);
    this.ephemeralTimers.delete(peerId);
  }

  // ----- login expiration -----
  /** Finds peers whose login expired since the last check and tells the listeners. */
  async checkLoginExpiration(): Promise<void> {
    const now = this.core.now();
    for (const state of this.core.accounts.values()) {
      if (!state.account.settings.peerLoginExpirationEnabled) continue;
      const expired: Peer[] = [];
      for (const p of state.peers.values()) {
        if (!this.expiredNotified.has(p.id) && isLoginExpired(state, p, now)) expired.push(p);
      }
      if (expired.length === 0) continue;
      await this.core.change(state.id, async (q) => {
        for (const p of expired) {
          await q.insertEvent({ id: newId(), accountId: state.id, timestamp: now, activityCode: ACT.peerLoginExpire, initiatorId: '', targetId: p.id, meta: {} });
        }
        return {
          result: undefined,
          apply: () => {
            const affected = new Set<string>();
            for (const p of expired) {
              this.expiredNotified.add(p.id);
              for (const v of state.visiblePeers(p.id)) affected.add(v);
              this.core.peerLoginExpired(state.id, p);
            }
            return affected;
          },
        };
      });
    }
  }
}

/** The methods the AccountManager face exposes. */
export const PEERS_API = [
  'listPeers', 'getPeer', 'peerGroups', 'accessiblePeers', 'findPeerByKey', 'updatePeer', 'deletePeer',
  'loginPeer', 'syncPeer', 'syncMeta', 'flushStatus', 'peerDisconnected', 'logoutPeer', 'checkLoginExpiration',
  'close',
] as const satisfies ReadonlyArray<keyof Peers>;
