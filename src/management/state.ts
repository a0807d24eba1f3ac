import type { AccountData } from './store/store.js';
import type { Account, Group, Peer, Policy, PolicyRule, RuleResource, SetupKey, User } from './types.js';
import { ALL_GROUP_NAME, accountRecord } from './types.js';

/**
 * The in-memory copy of one account. The store is the source of truth; every change is written to
 * the store first (in a transaction) and then applied here, so map computation never touches the
 * database. Indexes (group membership both ways, the policy index) are kept here.
 */

/** An encoded protobuf fragment and a short content hash (see networkmap.ts). */
export interface Chunk {
  bytes: Uint8Array;
  /** 64-bit content hash as two words (networkmap.ts chunk()): maps are compared through these, not their full bytes. */
  h1: number;
  h2: number;
}

/**
 * FirewallRule bytes minus the remote-peer part for one (rule, direction, receiver traits): one
 * entry per port selection, always emitted together.
 */
export interface RuleTemplate {
  id: number;
  rules: Uint8Array[];
}

/** One enabled rule with its groups expanded to peer sets. */
export interface IndexedRule {
  policy: Policy;
  rule: PolicyRule;
  /** Position, used to order firewall rules stably. */
  order: number;
  sources: ReadonlySet<string>;
  destinations: ReadonlySet<string>;
  /** The same members as peer slots (see AccountState.slotOf), for the map encoder's hot loops. */
  sourceSlots: Int32Array;
  destinationSlots: Int32Array;
  /** Encoded templates by trait combination (built lazily by networkmap.ts). */
  templates: Map<number, RuleTemplate>;
}

/** Per-peer encoded fragments about that peer as others see it; dropped whenever the peer changes. */
export interface PeerFragments {
  ipInt: number;
  /** The peer's own PeerConfig as field 2 (tag 18) of NetworkMap / SyncResponse. */
  ownConfigField: Uint8Array;
  /** RemotePeerConfig as NetworkMap field 3 (remotePeers), tag and length included. */
  remote: Chunk;
  /** The same as field 7 (offlinePeers). */
  offline: Chunk;
  /** A records as CustomZone field 2 entries, tag and length included. */
  dns: Chunk;
  /** FirewallRule field 1 (PeerIP); and with field 9 (sourcePrefixes) added. */
  fwPeer: Uint8Array;
  fwPeerWithPrefix: Uint8Array;
  /** Peer runs an agent >= 0.60.0 (NetBird SSH on 22022). */
  sshNew: boolean;
  /** Complete FirewallRules fields (tag 66) by template id, valid for template generation `fwGen`. */
  fwGen: number;
  fw: Map<number, Chunk & { count: number }>;
}

/** Rules a peer takes part in, by side. */
export interface PeerRules {
  asSource: IndexedRule[];
  asDestination: IndexedRule[];
}

const NO_RULES: PeerRules = { asSource: [], asDestination: [] };

export class AccountState {
  account: Account;
  readonly users = new Map<string, User>();
  readonly groups = new Map<string, Group>();
  /** group id -> member peer ids. */
  readonly members = new Map<string, Set<string>>();
  /** peer id -> group ids. */
  readonly peerGroups = new Map<string, Set<string>>();
  policies: Policy[] = [];
  readonly setupKeys = new Map<string, SetupKey>();
  readonly peers = new Map<string, Peer>();
  readonly peersByKey = new Map<string, Peer>();
  readonly usedIps = new Set<string>();
  readonly usedLabels = new Set<string>();
  allGroupId = '';
  /** See networkmap.ts forwarderPort(). */
  forwarderPortMemo: { serial: number; port: number } | undefined;

  private index: { rules: IndexedRule[]; byPeer: Map<string, PeerRules> } | undefined;
  /**
   * Bumped when policies change: firewall fragments built from older rule templates are dropped
   * lazily. Membership changes keep templates (they don't depend on who is in a group).
   */
  templateGen = 0;
  private readonly ruleTemplates = new WeakMap<PolicyRule, Map<number, RuleTemplate>>();
  /**
   * Peers also live in dense integer slots, so the map encoder can mark visited peers in typed
   * arrays instead of building Sets and Maps of id strings for every map.
   */
  private readonly slotIndex = new Map<string, number>();
  readonly slotPeers: Array<Peer | undefined> = [];
  private readonly freeSlots: number[] = [];
  /** Per-slot stamps for one map computation (see nextEpoch). */
  visitMark = new Int32Array(0);
  onlineMark = new Int32Array(0);
  private epoch = 0;
  /** Encoded per-peer fragments (see networkmap.ts), dropped whenever the peer changes. */
  readonly peerCache = new FragmentCache(this);

  constructor(data: AccountData) {
    this.account = accountRecord(data.account);
    for (const u of data.users) this.users.set(u.id, u);
    for (const p of data.peers) this.putPeer(p);
    for (const g of data.groups) this.putGroup(g);
    this.policies = data.policies;
    for (const k of data.setupKeys) this.setupKeys.set(k.id, k);
  }

  get id(): string {
    return this.account.id;
  }

  // ----- peers -----
  putPeer(p: Peer): void {
    let slot = this.slotIndex.get(p.id);
    if (slot === undefined) {
      slot = this.freeSlots.pop() ?? this.slotPeers.length;
      this.slotIndex.set(p.id, slot);
      // A new slot shows up in rule slot arrays only after the index is rebuilt.
      this.invalidateIndex();
    }
    this.slotPeers[slot] = p;
    const old = this.peers.get(p.id);
    if (old && old !== p && this.postureFlipped(old, p)) {
      this.invalidateIndex();
      this.postureFlips++;
    }
    if (old) {
      this.peersByKey.delete(old.key);
      this.usedIps.delete(old.ip);
      this.usedLabels.delete(old.dnsLabel);
    }
    this.peers.set(p.id, p);
    this.peersByKey.set(p.key, p);
    this.usedIps.add(p.ip);
    this.usedLabels.add(p.dnsLabel);
    if (!this.peerGroups.has(p.id)) this.peerGroups.set(p.id, new Set());
    this.peerCache.delete(p.id);
  }

  removePeer(peerId: string): Peer | undefined {
    const p = this.peers.get(peerId);
    if (!p) return undefined;
    this.peers.delete(peerId);
    this.peersByKey.delete(p.key);
    this.usedIps.delete(p.ip);
    this.usedLabels.delete(p.dnsLabel);
    for (const gid of this.peerGroups.get(peerId) ?? []) {
      this.members.get(gid)?.delete(peerId);
      const g = this.groups.get(gid);
      if (g) g.peers = g.peers.filter((id) => id !== peerId);
    }
    this.peerGroups.delete(peerId);
    this.peerCache.delete(peerId);
    const slot = this.slotIndex.get(peerId);
    if (slot !== undefined) {
      this.slotPeers[slot] = undefined;
      this.slotIndex.delete(peerId);
      this.freeSlots.push(slot);
    }
    this.invalidateIndex();
    return p;
  }

  // ----- groups -----
  putGroup(g: Group): void {
    const old = this.members.get(g.id);
    if (old) for (const pid of old) this.peerGroups.get(pid)?.delete(g.id);
    const set = new Set(g.peers.filter((id) => this.peers.has(id)));
    g.peers = [...set];
    this.groups.set(g.id, g);
    this.members.set(g.id, set);
    for (const pid of set) {
      let s = this.peerGroups.get(pid);
      if (!s) this.peerGroups.set(pid, (s = new Set()));
      s.add(g.id);
    }
    if (g.name === ALL_GROUP_NAME) this.allGroupId = g.id;
    this.invalidateIndex();
  }

  removeGroup(groupId: string): void {
    for (const pid of this.members.get(groupId) ?? []) this.peerGroups.get(pid)?.delete(groupId);
    this.members.delete(groupId);
    this.groups.delete(groupId);
    this.invalidateIndex();
  }

  addPeerToGroup(groupId: string, peerId: string): void {
    const g = this.groups.get(groupId);
    const set = this.members.get(groupId);
    if (!g || !set || set.has(peerId)) return;
    set.add(peerId);
    g.peers.push(peerId);
    let s = this.peerGroups.get(peerId);
    if (!s) this.peerGroups.set(peerId, (s = new Set()));
    s.add(groupId);
    this.invalidateIndex();
  }

  groupByName(name: string): Group | undefined {
    for (const g of this.groups.values()) if (g.name === name) return g;
    return undefined;
  }

  // ----- policies -----
  setPolicies(policies: Policy[]): void {
    this.policies = policies;
    this.templateGen++;
    this.invalidateIndex();
  }

  invalidateIndex(): void {
    this.index = undefined;
  }

  private templatesFor(rule: PolicyRule): Map<number, RuleTemplate> {
    let t = this.ruleTemplates.get(rule);
    if (!t) this.ruleTemplates.set(rule, (t = new Map()));
    return t;
  }

  /** Enabled rules with expanded peer sets, and per peer the rules it is in (built lazily). */
  policyIndex(): { rules: IndexedRule[]; byPeer: Map<string, PeerRules> } {
    if (this.index) return this.index;
    const rules: IndexedRule[] = [];
    const byPeer = new Map<string, PeerRules>();
    const entry = (pid: string): PeerRules => {
      let e = byPeer.get(pid);
      if (!e) byPeer.set(pid, (e = { asSource: [], asDestination: [] }));
      return e;
    };
    let order = 0;
    for (const policy of this.policies) {
      if (!policy.enabled) continue;
      for (const rule of policy.rules) {
        if (!rule.enabled) continue;
        const ir: IndexedRule = {
          policy,
          rule,
          order: order++,
          sources: this.gated(policy, this.ruleSide(rule.sources, rule.sourceResource)),
          destinations: this.ruleSide(rule.destinations, rule.destinationResource),
          sourceSlots: new Int32Array(0),
          destinationSlots: new Int32Array(0),
          templates: this.templatesFor(rule),
        };
        ir.sourceSlots = this.toSlots(ir.sources);
        ir.destinationSlots = this.toSlots(ir.destinations);
        rules.push(ir);
        for (const pid of ir.sources) entry(pid).asSource.push(ir);
        for (const pid of ir.destinations) entry(pid).asDestination.push(ir);
      }
    }
    this.index = { rules, byPeer };
    return this.index;
  }

  /**
   * Decides whether a peer passes a policy's source posture checks (set by objects.ts, which holds
   * the checks). A source peer that fails them is no source of the policy's rules at all, in
   * anybody's map, as in NetBird: it neither reaches the destinations nor is reached through them.
   */
  sourceGate: ((policy: Policy, peer: Peer) => boolean) | undefined;
  /** Bumped whenever a peer's change flips a posture verdict (the caller then re-sends every map). */
  postureFlips = 0;

  private gated(policy: Policy, sources: ReadonlySet<string>): ReadonlySet<string> {
    const gate = this.sourceGate;
    if (!gate || policy.sourcePostureChecks.length === 0) return sources;
    const out = new Set<string>();
    for (const pid of sources) {
      const p = this.peers.get(pid);
      if (p && gate(policy, p)) out.add(pid);
    }
    return out;
  }

  /** Whether a policy's posture verdict differs between two versions of a peer. */
  private postureFlipped(old: Peer, next: Peer): boolean {
    const gate = this.sourceGate;
    if (!gate) return false;
    for (const policy of this.policies) {
      if (policy.enabled && policy.sourcePostureChecks.length > 0 && gate(policy, old) !== gate(policy, next)) return true;
    }
    return false;
  }

  slotOf(peerId: string): number | undefined {
    return this.slotIndex.get(peerId);
  }

  private toSlots(ids: ReadonlySet<string>): Int32Array {
    const out = new Int32Array(ids.size);
    let i = 0;
    for (const id of ids) {
      const s = this.slotIndex.get(id);
      if (s !== undefined) out[i++] = s;
    }
    return i === out.length ? out : out.slice(0, i);
  }

  /** Starts one map computation: a fresh stamp for visitMark/onlineMark, sized to the slots. */
  nextEpoch(): number {
    if (this.visitMark.length < this.slotPeers.length) {
      const size = Math.max(64, this.slotPeers.length * 2);
      this.visitMark = new Int32Array(size);
      this.onlineMark = new Int32Array(size);
      this.epoch = 0;
    }
    if (this.epoch >= 0x7ffffff0) {
      this.visitMark.fill(0);
      this.onlineMark.fill(0);
      this.epoch = 0;
    }
    return ++this.epoch;
  }

  rulesOf(peerId: string): PeerRules {
    return this.policyIndex().byPeer.get(peerId) ?? NO_RULES;
  }

  /**
   * The peers of one side of a rule: its groups' members, or the single peer of a peer resource. A
   * network resource on a side is no peer (NetBird: it is reached through its network's routers,
   * objects.ts), so that side holds nobody here.
   */
  private ruleSide(groupIds: readonly string[], resource: RuleResource | undefined): ReadonlySet<string> {
    if (!resource) return this.expandGroups(groupIds);
    return resource.type === 'peer' && this.peers.has(resource.id) ? new Set([resource.id]) : new Set();
  }

  private expandGroups(groupIds: readonly string[]): Set<string> {
    if (groupIds.length === 1) return this.members.get(groupIds[0]!) ?? new Set();
    const out = new Set<string>();
    for (const gid of groupIds) for (const pid of this.members.get(gid) ?? []) out.add(pid);
    return out;
  }

  /**
   * Peers `peerId` may talk to (management-api.md §5.1). Visibility is symmetric: P sees Q iff some
   * rule has P as source and Q as destination or the other way round, so this set is also the set of
   * peers whose maps mention `peerId`.
   */
  visiblePeers(peerId: string): Set<string> {
    const r = this.rulesOf(peerId);
    const out = new Set<string>();
    for (const ir of r.asSource) for (const q of ir.destinations) out.add(q);
    for (const ir of r.asDestination) for (const q of ir.sources) out.add(q);
    out.delete(peerId);
    return out;
  }

  /** Every peer that is a source or destination of any of `rules`. */
  peersOfRules(rules: Iterable<Pick<PolicyRule, 'sources' | 'destinations' | 'sourceResource' | 'destinationResource'>>): Set<string> {
    const out = new Set<string>();
    for (const r of rules) {
      for (const gid of [...r.sources, ...r.destinations]) for (const pid of this.members.get(gid) ?? []) out.add(pid);
      for (const res of [r.sourceResource, r.destinationResource]) if (res?.type === 'peer' && this.peers.has(res.id)) out.add(res.id);
    }
    return out;
  }
}

/** Map-like access (by peer id) to the per-slot fragment cache. */
export class FragmentCache {
  readonly bySlot: Array<PeerFragments | undefined> = [];
  constructor(private readonly state: AccountState) {}

  get(peerId: string): PeerFragments | undefined {
    const s = this.state.slotOf(peerId);
    return s === undefined ? undefined : this.bySlot[s];
  }

  set(peerId: string, f: PeerFragments): void {
    const s = this.state.slotOf(peerId);
    if (s !== undefined) this.bySlot[s] = f;
  }

  delete(peerId: string): void {
    const s = this.state.slotOf(peerId);
    if (s !== undefined) this.bySlot[s] = undefined;
  }

  clear(): void {
    this.bySlot.length = 0;
  }

  *values(): IterableIterator<PeerFragments> {
    for (const f of this.bySlot) if (f) yield f;
  }
}
