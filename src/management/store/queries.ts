import type { Kysely, Transaction } from 'kysely';
import type {
  Account,
  AccountSettings,
  AuditEvent,
  DnsZone,
  Group,
  NameserverGroup,
  NetworkDef,
  NetworkResource,
  NetworkRouter,
  PersonalAccessToken,
  Peer,
  Policy,
  PolicyRule,
  PostureCheck,
  Route,
  SetupKey,
  User,
  UserInvite,
} from '../types.js';
import { accountSettings, policyRule } from '../types.js';
import {
  type AccountData,
  type AccountObjects,
  type LocalCredential,
  OBJECT_TABLE,
  type ObjectKind,
  b,
  isTrue,
  parseJson,
  peerFromRow,
  peerToRow,
  setupKeyFromRow,
  setupKeyToRow,
  tokenFromRow,
} from './records.js';
import type { Database } from './schema.js';

/** The queries, bound either to the database or to an open transaction. */
export class Queries {
  constructor(protected readonly db: Kysely<Database> | Transaction<Database>) {}

  // ----- instance key/value -----
  async getInstanceValue(key: string): Promise<string | undefined> {
    const r = await this.db.selectFrom('instance').select('value').where('key', '=', key).executeTakeFirst();
    return r?.value;
  }

  async setInstanceValue(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('instance')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }

  async deleteInstanceValue(key: string): Promise<void> {
    await this.db.deleteFrom('instance').where('key', '=', key).execute();
  }

  /** Sets `key` only when it has no value yet; returns the value it holds afterwards. */
  async claimInstanceValue(key: string, value: string): Promise<string> {
    await this.db.insertInto('instance').values({ key, value }).onConflict((oc) => oc.column('key').doNothing()).execute();
    return (await this.getInstanceValue(key)) ?? value;
  }

  // ----- accounts -----
  async listAccountIds(): Promise<string[]> {
    const rows = await this.db.selectFrom('accounts').select('id').orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => r.id);
  }

  async insertAccount(a: Account): Promise<void> {
    await this.db
      .insertInto('accounts')
      .values({
        id: a.id,
        domain: a.domain,
        domain_category: a.domainCategory,
        dns_domain: a.dnsDomain,
        network: a.network,
        serial: a.serial,
        settings_json: JSON.stringify(a.settings),
        created_at: a.createdAt,
        created_by: a.createdBy,
      })
      .execute();
  }

  async updateAccount(a: Account): Promise<void> {
    await this.db
      .updateTable('accounts')
      .set({
        domain: a.domain,
        domain_category: a.domainCategory,
        dns_domain: a.dnsDomain,
        network: a.network,
        serial: a.serial,
        settings_json: JSON.stringify(a.settings),
      })
      .where('id', '=', a.id)
      .execute();
  }

  async setAccountSerial(accountId: string, serial: number): Promise<void> {
    await this.db.updateTable('accounts').set({ serial }).where('id', '=', accountId).execute();
  }

  async deleteAccount(accountId: string): Promise<void> {
    // Children first: SQLite only honours ON DELETE CASCADE with foreign_keys=ON, which we set, but
    // explicit deletes keep the behaviour identical on both engines.
    for (const t of [
      'events',
      'group_peers',
      'setup_keys',
      'policies',
      'personal_access_tokens',
      'user_credentials',
      ...Object.values(OBJECT_TABLE),
      'peers',
      'groups',
      'users',
    ] as const) {
      await this.db.deleteFrom(t).where('account_id', '=', accountId).execute();
    }
    await this.db.deleteFrom('accounts').where('id', '=', accountId).execute();
  }

  async loadAccount(accountId: string): Promise<AccountData | undefined> {
    const a = await this.db.selectFrom('accounts').selectAll().where('id', '=', accountId).executeTakeFirst();
    if (!a) return undefined;
    const [users, groups, members, policies, keys, peers] = await Promise.all([
      this.db.selectFrom('users').selectAll().where('account_id', '=', accountId).orderBy('created_at').execute(),
      this.db.selectFrom('groups').selectAll().where('account_id', '=', accountId).orderBy('id').execute(),
      this.db.selectFrom('group_peers').select(['group_id', 'peer_id']).where('account_id', '=', accountId).execute(),
      this.db.selectFrom('policies').selectAll().where('account_id', '=', accountId).orderBy('position').orderBy('id').execute(),
      this.db.selectFrom('setup_keys').selectAll().where('account_id', '=', accountId).orderBy('created_at').execute(),
      this.db.selectFrom('peers').selectAll().where('account_id', '=', accountId).orderBy('created_at').orderBy('id').execute(),
    ]);
    const objects = await this.loadObjects(accountId);
    const byGroup = new Map<string, string[]>();
    for (const m of members) {
      let l = byGroup.get(m.group_id);
      if (!l) byGroup.set(m.group_id, (l = []));
      l.push(m.peer_id);
    }
    return {
      account: {
        id: a.id,
        domain: a.domain,
        domainCategory: a.domain_category,
        dnsDomain: a.dns_domain,
        network: a.network,
        serial: Number(a.serial),
        settings: accountSettings(parseJson<Partial<AccountSettings>>(a.settings_json, {})),
        createdAt: Number(a.created_at),
        createdBy: a.created_by,
      },
      users: users.map((u) => ({
        id: u.id,
        accountId: u.account_id,
        email: u.email,
        name: u.name,
        role: u.role as User['role'],
        isServiceUser: isTrue(u.is_service_user),
        blocked: isTrue(u.blocked),
        autoGroups: parseJson<string[]>(u.auto_groups_json, []),
        createdAt: Number(u.created_at),
        lastLogin: Number(u.last_login),
      })),
      groups: groups.map((g) => ({
        id: g.id,
        accountId: g.account_id,
        name: g.name,
        issued: g.issued as Group['issued'],
        peers: byGroup.get(g.id) ?? [],
      })),
      policies: policies.map((p) => ({
        id: p.id,
        accountId: p.account_id,
        name: p.name,
        description: p.description,
        enabled: isTrue(p.enabled),
        sourcePostureChecks: parseJson<string[]>(p.source_posture_checks_json, []),
        rules: parseJson<PolicyRule[]>(p.rules_json, []).map(policyRule),
      })),
      setupKeys: keys.map(setupKeyFromRow),
      peers: peers.map(peerFromRow),
      objects,
    };
  }

  private async loadObjects(accountId: string): Promise<AccountObjects> {
    const read = async <T>(kind: ObjectKind): Promise<T[]> => {
      const rows = await this.db.selectFrom(OBJECT_TABLE[kind]).select(['data_json']).where('account_id', '=', accountId).orderBy('id').execute();
      return rows.map((r) => JSON.parse(r.data_json) as T);
    };
    const tokens = await this.db.selectFrom('personal_access_tokens').selectAll().where('account_id', '=', accountId).orderBy('created_at').execute();
    return {
      routes: await read<Route>('routes'),
      nameserverGroups: await read<NameserverGroup>('nameserverGroups'),
      postureChecks: await read<PostureCheck>('postureChecks'),
      networks: await read<NetworkDef>('networks'),
      networkResources: await read<NetworkResource>('networkResources'),
      networkRouters: await read<NetworkRouter>('networkRouters'),
      dnsZones: await read<DnsZone>('dnsZones'),
      userInvites: await read<UserInvite>('userInvites'),
      tokens: tokens.map(tokenFromRow),
    };
  }

  // ----- REST entities stored as JSON rows -----
  /** Inserts or replaces one object of `kind`. */
  async putObject(kind: ObjectKind, obj: { id: string; accountId: string }, parentId = ''): Promise<void> {
    const data_json = JSON.stringify(obj);
    await this.db
      .insertInto(OBJECT_TABLE[kind])
      .values({ id: obj.id, account_id: obj.accountId, parent_id: parentId, data_json })
      .onConflict((oc) => oc.column('id').doUpdateSet({ data_json, parent_id: parentId }))
      .execute();
  }

  async deleteObject(kind: ObjectKind, id: string): Promise<void> {
    await this.db.deleteFrom(OBJECT_TABLE[kind]).where('id', '=', id).execute();
  }

  async deleteObjectsByParent(kind: ObjectKind, parentId: string): Promise<void> {
    await this.db.deleteFrom(OBJECT_TABLE[kind]).where('parent_id', '=', parentId).execute();
  }

  // ----- personal access tokens -----
  async insertToken(t: PersonalAccessToken): Promise<void> {
    await this.db
      .insertInto('personal_access_tokens')
      .values({
        id: t.id,
        account_id: t.accountId,
        user_id: t.userId,
        name: t.name,
        hashed_token: t.hashedToken,
        expires_at: t.expiresAt,
        created_by: t.createdBy,
        created_at: t.createdAt,
        last_used: t.lastUsed,
      })
      .execute();
  }

  async deleteToken(id: string): Promise<void> {
    await this.db.deleteFrom('personal_access_tokens').where('id', '=', id).execute();
  }

  async deleteUserTokens(userId: string): Promise<void> {
    await this.db.deleteFrom('personal_access_tokens').where('user_id', '=', userId).execute();
  }

  async setTokenLastUsed(id: string, lastUsed: number): Promise<void> {
    await this.db.updateTable('personal_access_tokens').set({ last_used: lastUsed }).where('id', '=', id).execute();
  }

  // ----- local credentials (embedded identity provider) -----
  async putCredential(c: LocalCredential): Promise<void> {
    await this.db
      .insertInto('user_credentials')
      .values({ user_id: c.userId, account_id: c.accountId, email: c.email, password_hash: c.passwordHash })
      .onConflict((oc) => oc.column('user_id').doUpdateSet({ email: c.email, password_hash: c.passwordHash }))
      .execute();
  }

  async findCredentialByEmail(email: string): Promise<LocalCredential | undefined> {
    const r = await this.db.selectFrom('user_credentials').selectAll().where('email', '=', email).executeTakeFirst();
    return r ? { userId: r.user_id, accountId: r.account_id, email: r.email, passwordHash: r.password_hash } : undefined;
  }

  async deleteCredential(userId: string): Promise<void> {
    await this.db.deleteFrom('user_credentials').where('user_id', '=', userId).execute();
  }

  async countUsers(): Promise<number> {
    const r = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  // ----- users -----
  async insertUser(u: User): Promise<void> {
    await this.db
      .insertInto('users')
      .values({
        id: u.id,
        account_id: u.accountId,
        email: u.email,
        name: u.name,
        role: u.role,
        is_service_user: b(u.isServiceUser),
        blocked: b(u.blocked),
        auto_groups_json: JSON.stringify(u.autoGroups),
        created_at: u.createdAt,
        last_login: u.lastLogin,
      })
      .execute();
  }

  async updateUser(u: User): Promise<void> {
    await this.db
      .updateTable('users')
      .set({
        email: u.email,
        name: u.name,
        role: u.role,
        is_service_user: b(u.isServiceUser),
        blocked: b(u.blocked),
        auto_groups_json: JSON.stringify(u.autoGroups),
        last_login: u.lastLogin,
      })
      .where('id', '=', u.id)
      .execute();
  }

  async deleteUser(userId: string): Promise<void> {
    await this.db.deleteFrom('users').where('id', '=', userId).execute();
  }

  // ----- groups -----
  async insertGroup(g: Group): Promise<void> {
    await this.db.insertInto('groups').values({ id: g.id, account_id: g.accountId, name: g.name, issued: g.issued }).execute();
    await this.addGroupPeers(g.accountId, g.id, g.peers);
  }

  async updateGroup(g: Group): Promise<void> {
    await this.db.updateTable('groups').set({ name: g.name, issued: g.issued }).where('id', '=', g.id).execute();
    await this.db.deleteFrom('group_peers').where('group_id', '=', g.id).execute();
    await this.addGroupPeers(g.accountId, g.id, g.peers);
  }

  async addGroupPeers(accountId: string, groupId: string, peerIds: readonly string[]): Promise<void> {
    // Chunked: SQLite allows at most 32766 bound parameters per statement.
    for (let i = 0; i < peerIds.length; i += 500) {
      const chunk = peerIds.slice(i, i + 500).map((peer_id) => ({ account_id: accountId, group_id: groupId, peer_id }));
      await this.db
        .insertInto('group_peers')
        .values(chunk)
        .onConflict((oc) => oc.columns(['group_id', 'peer_id']).doNothing())
        .execute();
    }
  }

  async removeGroupPeer(groupId: string, peerId: string): Promise<void> {
    await this.db.deleteFrom('group_peers').where('group_id', '=', groupId).where('peer_id', '=', peerId).execute();
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.db.deleteFrom('group_peers').where('group_id', '=', groupId).execute();
    await this.db.deleteFrom('groups').where('id', '=', groupId).execute();
  }

  // ----- policies -----
  async insertPolicy(p: Policy, position: number): Promise<void> {
    await this.db
      .insertInto('policies')
      .values({
        id: p.id,
        account_id: p.accountId,
        name: p.name,
        description: p.description,
        enabled: b(p.enabled),
        source_posture_checks_json: JSON.stringify(p.sourcePostureChecks),
        rules_json: JSON.stringify(p.rules),
        position,
      })
      .execute();
  }

  async updatePolicy(p: Policy): Promise<void> {
    await this.db
      .updateTable('policies')
      .set({
        name: p.name,
        description: p.description,
        enabled: b(p.enabled),
        source_posture_checks_json: JSON.stringify(p.sourcePostureChecks),
        rules_json: JSON.stringify(p.rules),
      })
      .where('id', '=', p.id)
      .execute();
  }

  async deletePolicy(policyId: string): Promise<void> {
    await this.db.deleteFrom('policies').where('id', '=', policyId).execute();
  }

  // ----- setup keys -----
  async insertSetupKey(k: SetupKey): Promise<void> {
    await this.db.insertInto('setup_keys').values(setupKeyToRow(k)).execute();
  }

  async updateSetupKey(k: SetupKey): Promise<void> {
    const { id: _id, ...rest } = setupKeyToRow(k);
    await this.db.updateTable('setup_keys').set(rest).where('id', '=', k.id).execute();
  }

  async deleteSetupKey(id: string): Promise<void> {
    await this.db.deleteFrom('setup_keys').where('id', '=', id).execute();
  }

  async findSetupKeyByHash(hash: string): Promise<SetupKey | undefined> {
    const r = await this.db.selectFrom('setup_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
    return r ? setupKeyFromRow(r) : undefined;
  }

  /**
   * Counts one use of a setup key, but only if it is still valid at `now` (not revoked, not expired,
   * not used up). The check and the increment are one conditional UPDATE, so two concurrent
   * registrations can never both consume the last use of a key. Returns whether the use was counted.
   */
  async consumeSetupKey(id: string, now: number): Promise<boolean> {
    const res = await this.db
      .updateTable('setup_keys')
      .set((eb) => ({ used_times: eb('used_times', '+', 1), last_used: now }))
      .where('id', '=', id)
      .where('revoked', '=', 0)
      .where((eb) => eb.or([eb('expires_at', '=', 0), eb('expires_at', '>', now)]))
      .where((eb) => eb.or([eb('usage_limit', '=', 0), eb('used_times', '<', eb.ref('usage_limit'))]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  // ----- peers -----
  async insertPeer(p: Peer): Promise<void> {
    await this.db.insertInto('peers').values(peerToRow(p)).execute();
  }

  async insertPeers(peers: readonly Peer[]): Promise<void> {
    for (let i = 0; i < peers.length; i += 200) {
      await this.db.insertInto('peers').values(peers.slice(i, i + 200).map(peerToRow)).execute();
    }
  }

  async updatePeer(p: Peer): Promise<void> {
    const { id: _id, ...rest } = peerToRow(p);
    await this.db.updateTable('peers').set(rest).where('id', '=', p.id).execute();
  }

  /** Marks every peer still flagged connected as disconnected at `lastSeen` (one statement). */
  async resetConnectedPeers(lastSeen: number): Promise<void> {
    await this.db.updateTable('peers').set({ connected: 0, last_seen: lastSeen }).where('connected', '=', 1).execute();
  }

  async setPeerStatus(peerId: string, connected: boolean, lastSeen: number): Promise<void> {
    await this.db.updateTable('peers').set({ connected: b(connected), last_seen: lastSeen }).where('id', '=', peerId).execute();
  }

  async deletePeer(peerId: string): Promise<void> {
    await this.db.deleteFrom('group_peers').where('peer_id', '=', peerId).execute();
    await this.db.deleteFrom('peers').where('id', '=', peerId).execute();
  }

  async findPeerByKey(key: string): Promise<Peer | undefined> {
    const r = await this.db.selectFrom('peers').selectAll().where('wg_pub_key', '=', key).executeTakeFirst();
    return r ? peerFromRow(r) : undefined;
  }

  async countPeers(accountId: string): Promise<number> {
    const r = await this.db
      .selectFrom('peers')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('account_id', '=', accountId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  // ----- events -----
  async insertEvent(e: AuditEvent): Promise<void> {
    await this.db
      .insertInto('events')
      .values({
        id: e.id,
        account_id: e.accountId,
        timestamp: e.timestamp,
        activity_code: e.activityCode,
        initiator_id: e.initiatorId,
        target_id: e.targetId,
        meta_json: JSON.stringify(e.meta),
      })
      .execute();
  }

  async listEvents(accountId: string, limit = 1000): Promise<AuditEvent[]> {
    const rows = await this.db
      .selectFrom('events')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('timestamp', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      accountId: r.account_id,
      timestamp: Number(r.timestamp),
      activityCode: r.activity_code,
      initiatorId: r.initiator_id,
      targetId: r.target_id,
      meta: parseJson<Record<string, string>>(r.meta_json, {}),
    }));
  }
}
