import { randomBytes } from 'node:crypto';
import type { AccountManager, AccountSettings, Peer, PolicyInput, RuleAction, RuleProtocol, RuleResource, User, UserRole } from '../management/index.js';
import { type FlowEventDirectory, type FlowStore, parseNetworkTrafficQuery, toNetworkTrafficEventsResponse } from '../flow/index.js';
import { accountObjects } from '../management/index.js';
import { type Resource, decide } from './access.js';
import type { AuthFailureLimiter, Authenticator } from './auth.js';
import { type AuthedCtx, type Endpoint, HttpError } from './endpoint.js';
import type { EmbeddedIdp } from './idp.js';
import * as J from './json.js';
import { type LookupDeps, lookupEndpoints } from './lookup-routes.js';
import { hashPassword, verifyPassword } from './password.js';
import * as S from './schema.js';

/** The endpoint table: NetBird's paths (management-api.md §8) with their access rule and handler. */

export interface RouteDeps {
  flowStore?: Pick<FlowStore, 'query'>;
  manager: AccountManager;
  idp: EmbeddedIdp | undefined;
  auth: Authenticator;
  /** Failure limiter of public endpoints that take a secret (invite tokens). */
  limiter?: AuthFailureLimiter;
  setupPatEnabled: boolean;
  version: string;
  oidc?: LookupDeps['oidc'];
  geo?: LookupDeps['geo'];
}

type B = Record<string, unknown>;
const strArr = (v: unknown): string[] | undefined => (Array.isArray(v) ? (v as string[]) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const bool = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const OK = {};

export function endpoints(deps: RouteDeps): Endpoint[] {
  const { manager } = deps;
  const list: Endpoint[] = [];
  const add = (
    method: Endpoint['method'],
    path: string,
    tag: string,
    summary: string,
    access: Endpoint['access'],
    handler: Endpoint['handler'],
    body?: S.Schema,
  ): void => {
    list.push({ method, path, tag, summary, access, handler, body });
  };
  const read = (resource: Parameters<typeof res>[0], listing = false): Endpoint['access'] => res(resource, false, listing);
  const write = (resource: Parameters<typeof res>[0]): Endpoint['access'] => res(resource, true, false);

  /** A peer the caller may see (regular users: only their own). */
  const visiblePeer = (ctx: AuthedCtx, id: string): Peer => {
    const p = manager.getPeer(ctx.accountId, id);
    if (ctx.decision === 'own' && p.userId !== ctx.user.id) throw new HttpError(404, `peer ${id} not found`);
    return p;
  };

  // ----- instance and setup -----
  add('GET', '/api/instance', 'Instance', 'Whether the instance still needs its first user', { kind: 'public' }, async () => ({ setup_required: !manager.hasUsers() }));
  add('GET', '/api/instance/version', 'Instance', 'Server version', { kind: 'authenticated' }, async () => ({
    management_current_version: deps.version,
    management_update_available: false,
  }));
  add(
    'POST',
    '/api/setup',
    'Instance',
    'Create the owner of a fresh instance (optionally with a PAT, returned once)',
    { kind: 'public' },
    async (ctx) => {
      if (manager.hasUsers()) throw new HttpError(412, 'setup was already completed');
      const b = ctx.body;
      const email = str(b.email)!.trim().toLowerCase();
      if (!EMAIL_RE.test(email)) throw new HttpError(422, 'email: not a valid e-mail address');
      const password = str(b.password)!;
      if (password.length < 8) throw new HttpError(422, 'password: must be at least 8 characters');
      const name = str(b.name)!.trim();
      if (name === '') throw new HttpError(422, 'name: must not be empty');
      const expire = num(b.pat_expire_in) ?? 1;
      if (!Number.isInteger(expire) || expire < 1 || expire > 365) throw new HttpError(422, 'pat_expire_in: must be between 1 and 365 days');
      const wantPat = bool(b.create_pat) === true && deps.setupPatEnabled;
      const passwordHash = await hashPassword(password);
      const r = await manager.setupOwner({ email, name, passwordHash, patExpireDays: wantPat ? expire : undefined });
      ctx.reply.header('cache-control', 'no-store');
      const out: J.JsonObject = { user_id: r.user.id, email: r.user.email };
      if (r.plainToken) out.personal_access_token = r.plainToken;
      return out;
    },
    S.SetupRequest,
  );

  // ----- accounts -----
  const sameAccount = (ctx: AuthedCtx): void => {
    if (ctx.params.accountId !== ctx.accountId) throw new HttpError(404, `account ${ctx.params.accountId} not found`);
  };
  add('GET', '/api/accounts', 'Accounts', 'The caller\'s account', read('accounts', true), async (ctx) => [J.accountJson(ctx.state.account)]);
  add(
    'PUT',
    '/api/accounts/{accountId}',
    'Accounts',
    'Update account settings',
    write('accounts'),
    async (ctx) => {
      sameAccount(ctx);
      const s = ctx.body.settings as B;
      if (str(s.network_range) !== undefined && s.network_range !== ctx.state.account.network) {
        throw new HttpError(422, 'settings.network_range: changing the network range of an existing account is not supported');
      }
      const patch: Partial<AccountSettings> = {};
      const map: Array<[string, keyof AccountSettings]> = [
        ['peer_login_expiration_enabled', 'peerLoginExpirationEnabled'],
        ['peer_login_expiration', 'peerLoginExpiration'],
        ['peer_inactivity_expiration_enabled', 'peerInactivityExpirationEnabled'],
        ['peer_inactivity_expiration', 'peerInactivityExpiration'],
        ['regular_users_view_blocked', 'regularUsersViewBlocked'],
        ['groups_propagation_enabled', 'groupsPropagationEnabled'],
        ['jwt_groups_enabled', 'jwtGroupsEnabled'],
        ['jwt_groups_claim_name', 'jwtGroupsClaimName'],
        ['jwt_allow_groups', 'jwtAllowGroups'],
        ['routing_peer_dns_resolution_enabled', 'routingPeerDnsResolutionEnabled'],
        ['lazy_connection_enabled', 'lazyConnectionEnabled'],
      ];
      for (const [json, key] of map) if (s[json] !== undefined) (patch as Record<string, unknown>)[key] = s[json];
      // Traffic events live under settings.extra, as in NetBird.
      const extra = (s.extra ?? {}) as B;
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new HttpError(400, 'settings.extra: must be an object');
      const extraMap: Array<[string, keyof AccountSettings]> = [
        ['network_traffic_logs_enabled', 'networkTrafficLogsEnabled'],
        ['network_traffic_logs_groups', 'networkTrafficLogsGroups'],
        ['network_traffic_packet_counter_enabled', 'networkTrafficPacketCounterEnabled'],
      ];
      for (const [json, key] of extraMap) {
        const v = extra[json];
        if (v === undefined) continue;
        const ok = key === 'networkTrafficLogsGroups' ? Array.isArray(v) && v.every((x) => typeof x === 'string') : typeof v === 'boolean';
        if (!ok) throw new HttpError(400, `settings.extra.${json}: must be ${key === 'networkTrafficLogsGroups' ? 'an array of group IDs' : 'a boolean'}`);
        if (key === 'networkTrafficLogsGroups') {
          for (const gid of v as string[]) if (!ctx.state.groups.has(gid)) throw new HttpError(422, `settings.extra.network_traffic_logs_groups: group ${gid} does not exist`);
        }
        (patch as Record<string, unknown>)[key] = v;
      }
      for (const k of ['peer_login_expiration', 'peer_inactivity_expiration'] as const) {
        const v = num(s[k]);
        if (v !== undefined && (v < 60 || v > 180 * 86400)) throw new HttpError(422, `settings.${k}: must be between 60 seconds and 180 days`);
      }
      const account = await manager.updateAccount(ctx.accountId, { settings: patch, dnsDomain: str(s.dns_domain) || undefined });
      return J.accountJson(account);
    },
    S.AccountRequest,
  );
  add('DELETE', '/api/accounts/{accountId}', 'Accounts', 'Delete the account and everything in it', { kind: 'resource', resource: 'accounts', write: true, ownerOnly: true }, async (ctx) => {
    sameAccount(ctx);
    await manager.deleteAccount(ctx.accountId);
    return OK;
  });

  // ----- users -----
  add('GET', '/api/users', 'Users', 'List users (query service_user=true|false)', read('users', true), async (ctx) => {
    let users = ctx.decision === 'own' ? [ctx.user] : manager.listUsers(ctx.accountId);
    if (ctx.query.service_user !== undefined) users = users.filter((u) => u.isServiceUser === (ctx.query.service_user === 'true'));
    return users.map((u) => J.userJson(u, ctx.user.id));
  });
  add('GET', '/api/users/current', 'Users', 'The calling user, with what their role may do', { kind: 'authenticated' }, async (ctx) => {
    // UserPermissions: per module read/create/update/delete, from the same rules the endpoints apply.
    const blocked = ctx.state.account.settings.regularUsersViewBlocked;
    const modules: Record<string, Record<string, boolean>> = {};
    const MODULES: Array<[string, Resource]> = [
      ['accounts', 'accounts'], ['users', 'users'], ['peers', 'peers'], ['setup_keys', 'setup_keys'], ['groups', 'groups'],
      ['policies', 'policies'], ['routes', 'routes'], ['networks', 'networks'], ['dns', 'dns'], ['nameservers', 'dns'],
      ['posture_checks', 'posture_checks'], ['events', 'events'], ['settings', 'settings'], ['identity_providers', 'settings'],
    ];
    for (const [name, resource] of MODULES) {
      const r = decide(ctx.role, resource, false, blocked);
      const w = decide(ctx.role, resource, true, blocked) !== 'deny';
      modules[name] = { read: r === 'allow' || r === 'own', create: w, update: w, delete: w };
    }
    modules.pats = { read: true, create: true, update: true, delete: true };
    // Remote jobs (debug bundles run on peers): who may change peers and the account, as in NetBird
    // where network admins have no access to them.
    const jobs = decide(ctx.role, 'accounts', true, blocked) === 'allow';
    modules.remote_jobs = { read: jobs || ctx.role === 'auditor', create: jobs, update: jobs, delete: jobs };
    return { ...J.userJson(ctx.user, ctx.user.id), permissions: { is_restricted: ctx.role === 'user' && blocked, modules } };
  });
  add(
    'POST',
    '/api/users',
    'Users',
    'Create a user (service users have no login, only PATs)',
    write('users'),
    async (ctx) => {
      const b = ctx.body;
      const isService = bool(b.is_service_user)!;
      const email = (str(b.email) ?? '').trim().toLowerCase();
      if (!isService && !EMAIL_RE.test(email)) throw new HttpError(422, 'email: a valid e-mail address is required for regular users');
      const role = str(b.role) as UserRole;
      // With the embedded identity provider a new person gets a generated password, shown once
      // (the User schema's `password`); they change it with PUT /api/users/{id}/password.
      const password = !isService && deps.idp ? randomBytes(12).toString('base64url') : undefined;
      const u = await manager.createUser(ctx.accountId, {
        email,
        name: str(b.name) ?? email,
        role,
        isServiceUser: isService,
        autoGroups: strArr(b.auto_groups),
        passwordHash: password ? await hashPassword(password) : undefined,
      });
      if (password) ctx.reply.header('cache-control', 'no-store');
      return { ...J.userJson(u, ctx.user.id), ...(password ? { password } : {}) };
    },
    S.UserCreateRequest,
  );
  add(
    'PUT',
    '/api/users/{userId}',
    'Users',
    'Update role, auto-groups and blocking of a user',
    write('users'),
    async (ctx) => {
      const target = manager.getUser(ctx.accountId, ctx.params.userId!);
      const b = ctx.body;
      const role = str(b.role) as UserRole;
      const blocked = bool(b.is_blocked)!;
      if (role === 'owner' && target.role !== 'owner' && ctx.role !== 'owner') throw new HttpError(403, 'only the owner can hand over ownership');
      if (target.role === 'owner' && ctx.role !== 'owner' && role !== 'owner') throw new HttpError(403, 'only the owner can change the owner');
      if (target.id === ctx.user.id && blocked) throw new HttpError(422, 'is_blocked: you cannot block yourself');
      if (target.id === ctx.user.id && role !== target.role && role !== 'owner') throw new HttpError(422, 'role: you cannot change your own role');
      const u = await manager.updateUser(ctx.accountId, target.id, { role, autoGroups: strArr(b.auto_groups), blocked });
      return J.userJson(u, ctx.user.id);
    },
    S.UserRequest,
  );
  add('DELETE', '/api/users/{userId}', 'Users', 'Delete a user with their peers and tokens', write('users'), async (ctx) => {
    const target = manager.getUser(ctx.accountId, ctx.params.userId!);
    if (target.id === ctx.user.id) throw new HttpError(422, 'userId: you cannot delete yourself');
    await manager.deleteUser(ctx.accountId, target.id);
    return OK;
  });
  add(
    'PUT',
    '/api/users/{userId}/password',
    'Users',
    'Change your own password (embedded identity provider)',
    { kind: 'authenticated' },
    async (ctx) => {
      if (ctx.params.userId !== ctx.user.id) throw new HttpError(403, 'you can only change your own password');
      const cred = await manager.findCredentialByEmail(ctx.user.email);
      if (!cred || cred.userId !== ctx.user.id) throw new HttpError(412, 'this user has no local password (managed by an external identity provider)');
      if (!(await verifyPassword(str(ctx.body.old_password)!, cred.passwordHash))) throw new HttpError(422, 'old_password: does not match');
      const next = str(ctx.body.new_password)!;
      if (next.length < 8) throw new HttpError(422, 'new_password: must be at least 8 characters');
      await manager.setCredential(ctx.accountId, ctx.user.id, ctx.user.email, await hashPassword(next));
      return OK;
    },
    S.PasswordChangeRequest,
  );

  // Users are never held for approval here (the account's `user_approval_required` is always off),
  // so approving or rejecting answers that nobody is pending.
  for (const [method, action] of [['POST', 'approve'], ['DELETE', 'reject']] as const) {
    add(method, `/api/users/{userId}/${action}`, 'Users', `${action === 'approve' ? 'Approve' : 'Reject'} a user waiting for approval`, write('users'), async (ctx) => {
      const u = manager.getUser(ctx.accountId, ctx.params.userId!);
      throw new HttpError(412, `user ${u.email || u.id} is not pending approval`);
    });
  }

  // ----- invites (embedded identity provider): a link token instead of a generated password -----
  add('GET', '/api/users/invites', 'Users', 'List pending invites', read('users', true), async (ctx) => {
    if (ctx.decision === 'own') return [];
    return manager.listInvites(ctx.accountId).map((i) => J.inviteJson(i, ctx.now));
  });
  add(
    'POST',
    '/api/users/invites',
    'Users',
    'Invite a user (the invite token is returned once)',
    write('users'),
    async (ctx) => {
      const b = ctx.body;
      const { token, invite } = await manager.createInvite(ctx.accountId, {
        email: str(b.email)!,
        name: str(b.name)!,
        role: str(b.role) as UserRole,
        autoGroups: strArr(b.auto_groups)!,
        expiresInSeconds: num(b.expires_in),
        createdBy: ctx.user.id,
      });
      ctx.reply.header('cache-control', 'no-store');
      return J.inviteJson(invite, ctx.now, token);
    },
    S.UserInviteCreateRequest,
  );
  add('DELETE', '/api/users/invites/{inviteId}', 'Users', 'Delete an invite', write('users'), async (ctx) => {
    await manager.deleteInvite(ctx.accountId, ctx.params.inviteId!);
    return OK;
  });
  add(
    'POST',
    '/api/users/invites/{inviteId}/regenerate',
    'Users',
    'New link for an invite (the old one stops working)',
    write('users'),
    async (ctx) => {
      const { token, invite } = await manager.regenerateInvite(ctx.accountId, ctx.params.inviteId!, num(ctx.body.expires_in));
      ctx.reply.header('cache-control', 'no-store');
      return { invite_token: token, invite_expires_at: J.time(invite.expiresAt) };
    },
    S.UserInviteRegenerateRequest,
  );
  add('GET', '/api/users/invites/{token}', 'Users', 'Public information about an invite link', { kind: 'public' }, async (ctx) => {
    const found = manager.findInviteByToken(ctx.params.token!);
    if (!found) throw new HttpError(404, 'invite not found');
    const inviter = found.state.users.get(found.invite.createdBy);
    return { email: found.invite.email, name: found.invite.name, expires_at: J.time(found.invite.expiresAt), valid: found.invite.expiresAt > ctx.now, invited_by: inviter?.name ?? '' };
  });
  add(
    'POST',
    '/api/users/invites/{token}/accept',
    'Users',
    'Accept an invite and set a password',
    { kind: 'public' },
    async (ctx) => {
      const password = str(ctx.body.password)!;
      // The token is checked before the password is hashed (scrypt is the expensive part), and
      // wrong tokens count against the client's failure limit.
      const ip = ctx.req.ip;
      if (deps.limiter?.blocked(ip)) throw new HttpError(429, 'too many failed attempts; try again later');
      const found = manager.findInviteByToken(ctx.params.token!);
      if (!found) {
        deps.limiter?.fail(ip);
        throw new HttpError(404, 'invite not found; ask for a new link');
      }
      if (found.invite.expiresAt <= ctx.now) throw new HttpError(412, 'the invite has expired; ask for a new link');
      if (!/^(?=.*[0-9])(?=.*[A-Z])(?=.*[^a-zA-Z0-9]).{8,}$/.test(password)) {
        throw new HttpError(422, 'password: at least 8 characters with an upper-case letter, a digit and a special character');
      }
      await manager.acceptInvite(ctx.params.token!, await hashPassword(password));
      return { success: true };
    },
    S.UserInviteAcceptRequest,
  );

  // ----- personal access tokens -----
  /** Users manage their own tokens; owners and admins also those of service users. */
  const tokenOwner = (ctx: AuthedCtx): User => {
    const target = manager.getUser(ctx.accountId, ctx.params.userId!);
    if (target.id === ctx.user.id) return target;
    if ((ctx.role === 'owner' || ctx.role === 'admin') && target.isServiceUser) return target;
    throw new HttpError(403, 'you can only manage your own tokens (admins: also those of service users)');
  };
  add('GET', '/api/users/{userId}/tokens', 'Tokens', 'List a user\'s personal access tokens', { kind: 'authenticated' }, async (ctx) =>
    manager.listTokens(ctx.accountId, tokenOwner(ctx).id).map(J.tokenJson),
  );
  add(
    'POST',
    '/api/users/{userId}/tokens',
    'Tokens',
    'Create a personal access token (the plain token is returned once)',
    { kind: 'authenticated' },
    async (ctx) => {
      const target = tokenOwner(ctx);
      const r = await manager.createToken(ctx.accountId, target.id, { name: str(ctx.body.name)!, expiresInDays: num(ctx.body.expires_in)!, createdBy: ctx.user.id });
      ctx.reply.header('cache-control', 'no-store');
      return { plain_token: r.plain, personal_access_token: J.tokenJson(r.token) };
    },
    S.PersonalAccessTokenRequest,
  );
  add('GET', '/api/users/{userId}/tokens/{tokenId}', 'Tokens', 'A personal access token', { kind: 'authenticated' }, async (ctx) =>
    J.tokenJson(manager.getToken(ctx.accountId, tokenOwner(ctx).id, ctx.params.tokenId!)),
  );
  add('DELETE', '/api/users/{userId}/tokens/{tokenId}', 'Tokens', 'Revoke (delete) a personal access token', { kind: 'authenticated' }, async (ctx) => {
    await manager.deleteToken(ctx.accountId, tokenOwner(ctx).id, ctx.params.tokenId!);
    return OK;
  });

  // ----- peers -----
  add('GET', '/api/peers', 'Peers', 'List peers (regular users: their own); filters name, ip', read('peers', true), async (ctx) => {
    let peers = manager.listPeers(ctx.accountId);
    if (ctx.decision === 'own') peers = peers.filter((p) => p.userId === ctx.user.id);
    if (ctx.query.name) peers = peers.filter((p) => p.name === ctx.query.name);
    if (ctx.query.ip) peers = peers.filter((p) => p.ip === ctx.query.ip);
    // accessible_peers_count: peers taking part in the same rules see the same set, so each distinct
    // rule signature is expanded once (an All->All account costs one union, not one per peer).
    const unions = new Map<string, Set<string>>();
    const accessible = (peerId: string): number => {
      const r = ctx.state.rulesOf(peerId);
      const sig = `${r.asSource.map((x) => x.order).join(',')}|${r.asDestination.map((x) => x.order).join(',')}`;
      let u = unions.get(sig);
      if (!u) {
        u = new Set<string>();
        for (const ir of r.asSource) for (const q of ir.destinations) u.add(q);
        for (const ir of r.asDestination) for (const q of ir.sources) u.add(q);
        unions.set(sig, u);
      }
      return u.size - (u.has(peerId) ? 1 : 0);
    };
    return peers.map((p) => ({ ...J.peerJson(ctx.state, p, ctx.now), accessible_peers_count: accessible(p.id) }));
  });
  add('GET', '/api/peers/{peerId}', 'Peers', 'A peer', read('peers'), async (ctx) => J.peerJson(ctx.state, visiblePeer(ctx, ctx.params.peerId!), ctx.now));
  add(
    'PUT',
    '/api/peers/{peerId}',
    'Peers',
    'Update a peer (name, SSH, expiration flags)',
    write('peers'),
    async (ctx) => {
      const old = visiblePeer(ctx, ctx.params.peerId!);
      const b = ctx.body;
      if (str(b.ip) !== undefined && b.ip !== old.ip) throw new HttpError(422, 'ip: changing a peer\'s overlay address is not supported');
      const p = await manager.updatePeer(ctx.accountId, old.id, {
        name: str(b.name),
        sshEnabled: bool(b.ssh_enabled),
        loginExpirationEnabled: bool(b.login_expiration_enabled),
        inactivityExpirationEnabled: bool(b.inactivity_expiration_enabled),
        approvalRequired: bool(b.approval_required),
      });
      return J.peerJson(ctx.state, p, ctx.now);
    },
    S.PeerRequest,
  );
  add('DELETE', '/api/peers/{peerId}', 'Peers', 'Delete a peer', write('peers'), async (ctx) => {
    const p = visiblePeer(ctx, ctx.params.peerId!);
    await manager.deletePeer(ctx.accountId, p.id, ctx.user.id);
    return OK;
  });
  add('GET', '/api/peers/{peerId}/accessible-peers', 'Peers', 'Peers this peer can reach', read('peers', true), async (ctx) => {
    const p = visiblePeer(ctx, ctx.params.peerId!);
    return manager.accessiblePeers(ctx.accountId, p.id).map(J.accessiblePeerJson);
  });

  // ----- setup keys -----
  add('GET', '/api/setup-keys', 'Setup keys', 'List setup keys', read('setup_keys', true), async (ctx) => manager.listSetupKeys(ctx.accountId).map((k) => J.setupKeyJson(k, ctx.now)));
  add('GET', '/api/setup-keys/{keyId}', 'Setup keys', 'A setup key', read('setup_keys'), async (ctx) => J.setupKeyJson(manager.getSetupKey(ctx.accountId, ctx.params.keyId!), ctx.now));
  add(
    'POST',
    '/api/setup-keys',
    'Setup keys',
    'Create a setup key (the plain key is returned once)',
    write('setup_keys'),
    async (ctx) => {
      const b = ctx.body;
      const expiresIn = num(b.expires_in)!;
      if (expiresIn !== 0 && (expiresIn < 86400 || expiresIn > 365 * 86400)) throw new HttpError(422, 'expires_in: must be 0 (never) or between 1 and 365 days in seconds');
      const { key, setupKey } = await manager.createSetupKey(ctx.accountId, {
        name: str(b.name)!,
        type: str(b.type) as 'reusable' | 'one-off',
        expiresIn,
        usageLimit: num(b.usage_limit),
        autoGroups: strArr(b.auto_groups),
        ephemeral: bool(b.ephemeral),
        allowExtraDnsLabels: bool(b.allow_extra_dns_labels),
      });
      ctx.reply.header('cache-control', 'no-store');
      return J.setupKeyJson(setupKey, ctx.now, key);
    },
    S.CreateSetupKeyRequest,
  );
  add(
    'PUT',
    '/api/setup-keys/{keyId}',
    'Setup keys',
    'Revoke a setup key or change its auto-groups',
    write('setup_keys'),
    async (ctx) => J.setupKeyJson(await manager.updateSetupKey(ctx.accountId, ctx.params.keyId!, { revoked: bool(ctx.body.revoked), autoGroups: strArr(ctx.body.auto_groups) }), ctx.now),
    S.SetupKeyRequest,
  );
  add('DELETE', '/api/setup-keys/{keyId}', 'Setup keys', 'Delete a setup key', write('setup_keys'), async (ctx) => {
    await manager.deleteSetupKey(ctx.accountId, ctx.params.keyId!);
    return OK;
  });

  // ----- groups -----
  const noResources = (b: B): void => {
    if (Array.isArray(b.resources) && b.resources.length > 0) {
      throw new HttpError(422, 'resources: put network resources into groups through the resource (PUT /api/networks/{networkId}/resources/{resourceId})');
    }
  };
  add('GET', '/api/groups', 'Groups', 'List groups', read('groups', true), async (ctx) => manager.listGroups(ctx.accountId).map((g) => J.groupJson(ctx.state, g)));
  add('GET', '/api/groups/{groupId}', 'Groups', 'A group', read('groups'), async (ctx) => J.groupJson(ctx.state, manager.getGroup(ctx.accountId, ctx.params.groupId!)));
  add(
    'POST',
    '/api/groups',
    'Groups',
    'Create a group',
    write('groups'),
    async (ctx) => {
      noResources(ctx.body);
      if (manager.listGroups(ctx.accountId).some((g) => g.name === str(ctx.body.name)!.trim())) throw new HttpError(409, `name: a group named ${JSON.stringify(ctx.body.name)} already exists`);
      return J.groupJson(ctx.state, await manager.createGroup(ctx.accountId, { name: str(ctx.body.name)!, peers: strArr(ctx.body.peers) }));
    },
    S.GroupRequest,
  );
  add(
    'PUT',
    '/api/groups/{groupId}',
    'Groups',
    'Replace a group\'s name and peers',
    write('groups'),
    async (ctx) => {
      noResources(ctx.body);
      const name = str(ctx.body.name)!.trim();
      if (manager.listGroups(ctx.accountId).some((g) => g.name === name && g.id !== ctx.params.groupId)) throw new HttpError(409, `name: a group named ${JSON.stringify(name)} already exists`);
      return J.groupJson(ctx.state, await manager.updateGroup(ctx.accountId, ctx.params.groupId!, { name: str(ctx.body.name)!, peers: strArr(ctx.body.peers) }));
    },
    S.GroupRequest,
  );
  add('DELETE', '/api/groups/{groupId}', 'Groups', 'Delete a group', write('groups'), async (ctx) => {
    await manager.deleteGroup(ctx.accountId, ctx.params.groupId!);
    return OK;
  });

  // ----- policies -----
  /** The schema has checked the shape ({id, type} with a known type). */
  const ruleResource = (v: unknown): RuleResource | undefined => {
    if (v == null) return undefined;
    const o = v as B;
    return { id: str(o.id)!, type: str(o.type) as RuleResource['type'] };
  };
  const policyInput = (b: B): PolicyInput => ({
    name: str(b.name)!,
    description: str(b.description),
    enabled: bool(b.enabled),
    sourcePostureChecks: strArr(b.source_posture_checks),
    rules: (b.rules as B[]).map((r, i) => {
      // A side is groups or one resource; the dashboard sends null groups beside a resource.
      for (const [k, v, res] of [['sources', r.sources, r.sourceResource], ['destinations', r.destinations, r.destinationResource]] as const) {
        if (res == null && (!Array.isArray(v) || v.length === 0)) throw new HttpError(422, `rules.${i}.${k}: at least one group (or a ${k === 'sources' ? 'sourceResource' : 'destinationResource'}) is required`);
      }
      return {
        id: str(r.id),
        name: str(r.name)!,
        description: str(r.description),
        enabled: bool(r.enabled),
        action: str(r.action) as RuleAction,
        bidirectional: bool(r.bidirectional),
        protocol: str(r.protocol) as RuleProtocol,
        ports: strArr(r.ports),
        portRanges: Array.isArray(r.port_ranges) ? (r.port_ranges as Array<{ start: number; end: number }>) : undefined,
        sources: strArr(r.sources) ?? [],
        destinations: strArr(r.destinations) ?? [],
        sourceResource: ruleResource(r.sourceResource),
        destinationResource: ruleResource(r.destinationResource),
      };
    }),
  });
  add('GET', '/api/policies', 'Policies', 'List policies', read('policies', true), async (ctx) => manager.listPolicies(ctx.accountId).map((p) => J.policyJson(ctx.state, p)));
  add('GET', '/api/policies/{policyId}', 'Policies', 'A policy', read('policies'), async (ctx) => J.policyJson(ctx.state, manager.getPolicy(ctx.accountId, ctx.params.policyId!)));
  add('POST', '/api/policies', 'Policies', 'Create a policy', write('policies'), async (ctx) => J.policyJson(ctx.state, await manager.createPolicy(ctx.accountId, policyInput(ctx.body))), S.PolicyRequest);
  add(
    'PUT',
    '/api/policies/{policyId}',
    'Policies',
    'Replace a policy',
    write('policies'),
    async (ctx) => J.policyJson(ctx.state, await manager.updatePolicy(ctx.accountId, ctx.params.policyId!, policyInput(ctx.body))),
    S.PolicyRequest,
  );
  add('DELETE', '/api/policies/{policyId}', 'Policies', 'Delete a policy', write('policies'), async (ctx) => {
    await manager.deletePolicy(ctx.accountId, ctx.params.policyId!);
    return OK;
  });

  // ----- routes -----
  const routeInput = (b: B): Parameters<AccountManager['createRoute']>[1] => ({
    description: str(b.description)!,
    networkId: str(b.network_id)!,
    enabled: bool(b.enabled)!,
    peer: str(b.peer),
    peerGroups: strArr(b.peer_groups),
    network: str(b.network),
    domains: strArr(b.domains),
    metric: num(b.metric)!,
    masquerade: bool(b.masquerade)!,
    groups: strArr(b.groups)!,
    keepRoute: bool(b.keep_route)!,
    accessControlGroups: strArr(b.access_control_groups),
    skipAutoApply: bool(b.skip_auto_apply),
  });
  const objs = (ctx: AuthedCtx): ReturnType<AccountManager['objects']> => manager.objects(ctx.accountId);
  const need = <T>(x: T | undefined, what: string, id: string): T => {
    if (x === undefined) throw new HttpError(404, `${what} ${id} not found`);
    return x;
  };
  /**
   * The five endpoints of a collection kept in the account's objects (list, get, create, replace, delete),
   * with NetBird's paths and summaries ("List routes", "A route", "Create a route", ...).
   */
  const crud = <O, I>(c: {
    path: string;
    idParam: string;
    tag: string;
    noun: string;
    plural: string;
    resource: Parameters<typeof read>[0];
    items: (ctx: AuthedCtx) => Map<string, O>;
    json: (o: O) => unknown;
    input: (b: B) => I;
    schema: S.Schema;
    create: (accountId: string, input: I) => Promise<O>;
    update: (accountId: string, id: string, input: I) => Promise<O>;
    remove: (accountId: string, id: string) => Promise<void>;
  }): void => {
    const one = `${c.path}/{${c.idParam}}`;
    add('GET', c.path, c.tag, `List ${c.plural}`, read(c.resource, true), async (ctx) => [...c.items(ctx).values()].map(c.json));
    add('GET', one, c.tag, `A ${c.noun}`, read(c.resource), async (ctx) => c.json(need(c.items(ctx).get(ctx.params[c.idParam]!), c.noun, ctx.params[c.idParam]!)));
    add('POST', c.path, c.tag, `Create a ${c.noun}`, write(c.resource), async (ctx) => c.json(await c.create(ctx.accountId, c.input(ctx.body))), c.schema);
    add('PUT', one, c.tag, `Replace a ${c.noun}`, write(c.resource), async (ctx) => c.json(await c.update(ctx.accountId, ctx.params[c.idParam]!, c.input(ctx.body))), c.schema);
    add('DELETE', one, c.tag, `Delete a ${c.noun}`, write(c.resource), async (ctx) => {
      await c.remove(ctx.accountId, ctx.params[c.idParam]!);
      return OK;
    });
  };
  crud({
    path: '/api/routes', idParam: 'routeId', tag: 'Routes', noun: 'route', plural: 'routes', resource: 'routes',
    items: (ctx) => objs(ctx).routes, json: J.routeJson, input: routeInput, schema: S.RouteRequest,
    create: (acc, i) => manager.createRoute(acc, i), update: (acc, id, i) => manager.updateRoute(acc, id, i), remove: (acc, id) => manager.deleteRoute(acc, id),
  });

  // ----- networks -----
  add('GET', '/api/networks', 'Networks', 'List networks', read('networks', true), async (ctx) => [...objs(ctx).networks.values()].map((n) => J.networkJson(ctx.state, n)));
  add('GET', '/api/networks/routers', 'Networks', 'List the routers of all networks', read('networks', true), async (ctx) => [...objs(ctx).networkRouters.values()].map(J.networkRouterJson));
  add('GET', '/api/networks/{networkId}', 'Networks', 'A network', read('networks'), async (ctx) => J.networkJson(ctx.state, manager.getNetwork(ctx.accountId, ctx.params.networkId!)));
  add('POST', '/api/networks', 'Networks', 'Create a network', write('networks'), async (ctx) => J.networkJson(ctx.state, await manager.saveNetwork(ctx.accountId, undefined, { name: str(ctx.body.name)!, description: str(ctx.body.description) })), S.NetworkRequest);
  add(
    'PUT',
    '/api/networks/{networkId}',
    'Networks',
    'Replace a network\'s name and description',
    write('networks'),
    async (ctx) => J.networkJson(ctx.state, await manager.saveNetwork(ctx.accountId, ctx.params.networkId!, { name: str(ctx.body.name)!, description: str(ctx.body.description) })),
    S.NetworkRequest,
  );
  add('DELETE', '/api/networks/{networkId}', 'Networks', 'Delete a network with its resources and routers', write('networks'), async (ctx) => {
    await manager.deleteNetwork(ctx.accountId, ctx.params.networkId!);
    return OK;
  });
  const resourceInput = (b: B): Parameters<AccountManager['saveNetworkResource']>[3] => ({
    name: str(b.name)!,
    description: str(b.description) ?? '',
    address: str(b.address)!,
    enabled: bool(b.enabled)!,
    groups: strArr(b.groups)!,
  });
  add('GET', '/api/networks/{networkId}/resources', 'Networks', 'List a network\'s resources', read('networks', true), async (ctx) => {
    manager.getNetwork(ctx.accountId, ctx.params.networkId!);
    return [...objs(ctx).networkResources.values()].filter((r) => r.networkId === ctx.params.networkId).map((r) => J.networkResourceJson(ctx.state, r));
  });
  add('GET', '/api/networks/{networkId}/resources/{resourceId}', 'Networks', 'A network resource', read('networks'), async (ctx) =>
    J.networkResourceJson(ctx.state, manager.getNetworkResource(ctx.accountId, ctx.params.networkId!, ctx.params.resourceId!)),
  );
  add(
    'POST',
    '/api/networks/{networkId}/resources',
    'Networks',
    'Add a resource (host, subnet or domain) to a network',
    write('networks'),
    async (ctx) => J.networkResourceJson(ctx.state, await manager.saveNetworkResource(ctx.accountId, ctx.params.networkId!, undefined, resourceInput(ctx.body))),
    S.NetworkResourceRequest,
  );
  add(
    'PUT',
    '/api/networks/{networkId}/resources/{resourceId}',
    'Networks',
    'Replace a network resource',
    write('networks'),
    async (ctx) => J.networkResourceJson(ctx.state, await manager.saveNetworkResource(ctx.accountId, ctx.params.networkId!, ctx.params.resourceId!, resourceInput(ctx.body))),
    S.NetworkResourceRequest,
  );
  add('DELETE', '/api/networks/{networkId}/resources/{resourceId}', 'Networks', 'Delete a network resource', write('networks'), async (ctx) => {
    await manager.deleteNetworkResource(ctx.accountId, ctx.params.networkId!, ctx.params.resourceId!);
    return OK;
  });
  const routerInput = (b: B): Parameters<AccountManager['saveNetworkRouter']>[3] => ({
    peer: str(b.peer) ?? '',
    peerGroups: strArr(b.peer_groups) ?? [],
    metric: num(b.metric)!,
    masquerade: bool(b.masquerade)!,
    enabled: bool(b.enabled)!,
  });
  add('GET', '/api/networks/{networkId}/routers', 'Networks', 'List a network\'s routers', read('networks', true), async (ctx) => {
    manager.getNetwork(ctx.accountId, ctx.params.networkId!);
    return [...objs(ctx).networkRouters.values()].filter((r) => r.networkId === ctx.params.networkId).map(J.networkRouterJson);
  });
  add('GET', '/api/networks/{networkId}/routers/{routerId}', 'Networks', 'A network router', read('networks'), async (ctx) =>
    J.networkRouterJson(manager.getNetworkRouter(ctx.accountId, ctx.params.networkId!, ctx.params.routerId!)),
  );
  add(
    'POST',
    '/api/networks/{networkId}/routers',
    'Networks',
    'Add a router (peer or peer groups) to a network',
    write('networks'),
    async (ctx) => J.networkRouterJson(await manager.saveNetworkRouter(ctx.accountId, ctx.params.networkId!, undefined, routerInput(ctx.body))),
    S.NetworkRouterRequest,
  );
  add(
    'PUT',
    '/api/networks/{networkId}/routers/{routerId}',
    'Networks',
    'Replace a network router',
    write('networks'),
    async (ctx) => J.networkRouterJson(await manager.saveNetworkRouter(ctx.accountId, ctx.params.networkId!, ctx.params.routerId!, routerInput(ctx.body))),
    S.NetworkRouterRequest,
  );
  add('DELETE', '/api/networks/{networkId}/routers/{routerId}', 'Networks', 'Delete a network router', write('networks'), async (ctx) => {
    await manager.deleteNetworkRouter(ctx.accountId, ctx.params.networkId!, ctx.params.routerId!);
    return OK;
  });

  // ----- DNS -----
  const nsInput = (b: B): Parameters<AccountManager['createNameserverGroup']>[1] => ({
    name: str(b.name)!,
    description: str(b.description)!,
    nameservers: (b.nameservers as B[]).map((n) => ({ ip: str(n.ip)!, nsType: str(n.ns_type) as 'udp', port: num(n.port)! })),
    enabled: bool(b.enabled)!,
    groups: strArr(b.groups)!,
    primary: bool(b.primary)!,
    domains: strArr(b.domains)!,
    searchDomainsEnabled: bool(b.search_domains_enabled)!,
  });
  crud({
    path: '/api/dns/nameservers', idParam: 'nsgroupId', tag: 'DNS', noun: 'name-server group', plural: 'name-server groups', resource: 'dns',
    items: (ctx) => objs(ctx).nameserverGroups, json: J.nameserverGroupJson, input: nsInput, schema: S.NameserverGroupRequest,
    create: (acc, i) => manager.createNameserverGroup(acc, i), update: (acc, id, i) => manager.updateNameserverGroup(acc, id, i),
    remove: (acc, id) => manager.deleteNameserverGroup(acc, id),
  });
  add('GET', '/api/dns/settings', 'DNS', 'DNS settings', read('dns'), async (ctx) => ({ disabled_management_groups: [...ctx.state.account.settings.dnsDisabledManagementGroups] }));
  add(
    'PUT',
    '/api/dns/settings',
    'DNS',
    'Replace DNS settings',
    write('dns'),
    async (ctx) => ({ disabled_management_groups: await manager.updateDnsSettings(ctx.accountId, strArr(ctx.body.disabled_management_groups)!) }),
    S.DNSSettings,
  );
  const zoneInput = (b: B): Parameters<AccountManager['saveDnsZone']>[2] => ({
    name: str(b.name)!,
    domain: str(b.domain)!,
    enabled: bool(b.enabled) ?? true,
    enableSearchDomain: bool(b.enable_search_domain)!,
    distributionGroups: strArr(b.distribution_groups)!,
  });
  add('GET', '/api/dns/zones', 'DNS', 'List DNS zones', read('dns', true), async (ctx) => [...objs(ctx).dnsZones.values()].map(J.dnsZoneJson));
  add('GET', '/api/dns/zones/{zoneId}', 'DNS', 'A DNS zone', read('dns'), async (ctx) => J.dnsZoneJson(manager.getDnsZone(ctx.accountId, ctx.params.zoneId!)));
  add('POST', '/api/dns/zones', 'DNS', 'Create a DNS zone', write('dns'), async (ctx) => J.dnsZoneJson(await manager.saveDnsZone(ctx.accountId, undefined, zoneInput(ctx.body))), S.ZoneRequest);
  add('PUT', '/api/dns/zones/{zoneId}', 'DNS', 'Replace a DNS zone', write('dns'), async (ctx) => J.dnsZoneJson(await manager.saveDnsZone(ctx.accountId, ctx.params.zoneId!, zoneInput(ctx.body))), S.ZoneRequest);
  add('DELETE', '/api/dns/zones/{zoneId}', 'DNS', 'Delete a DNS zone', write('dns'), async (ctx) => {
    await manager.deleteDnsZone(ctx.accountId, ctx.params.zoneId!);
    return OK;
  });
  const recordInput = (b: B): Parameters<AccountManager['saveDnsRecord']>[3] => ({
    name: str(b.name)!,
    type: str(b.type) as 'A' | 'AAAA' | 'CNAME',
    content: str(b.content)!,
    ttl: num(b.ttl)!,
  });
  add('GET', '/api/dns/zones/{zoneId}/records', 'DNS', 'List a zone\'s records', read('dns', true), async (ctx) => manager.getDnsZone(ctx.accountId, ctx.params.zoneId!).records.map(J.dnsRecordJson));
  add('GET', '/api/dns/zones/{zoneId}/records/{recordId}', 'DNS', 'A DNS record', read('dns'), async (ctx) =>
    J.dnsRecordJson(manager.getDnsRecord(ctx.accountId, ctx.params.zoneId!, ctx.params.recordId!)),
  );
  add(
    'POST',
    '/api/dns/zones/{zoneId}/records',
    'DNS',
    'Create a DNS record',
    write('dns'),
    async (ctx) => J.dnsRecordJson(await manager.saveDnsRecord(ctx.accountId, ctx.params.zoneId!, undefined, recordInput(ctx.body))),
    S.DNSRecordRequest,
  );
  add(
    'PUT',
    '/api/dns/zones/{zoneId}/records/{recordId}',
    'DNS',
    'Replace a DNS record',
    write('dns'),
    async (ctx) => J.dnsRecordJson(await manager.saveDnsRecord(ctx.accountId, ctx.params.zoneId!, ctx.params.recordId!, recordInput(ctx.body))),
    S.DNSRecordRequest,
  );
  add('DELETE', '/api/dns/zones/{zoneId}/records/{recordId}', 'DNS', 'Delete a DNS record', write('dns'), async (ctx) => {
    await manager.deleteDnsRecord(ctx.accountId, ctx.params.zoneId!, ctx.params.recordId!);
    return OK;
  });

  // ----- posture checks -----
  const pcInput = (b: B): Parameters<AccountManager['createPostureCheck']>[1] => ({ name: str(b.name)!, description: str(b.description), checks: b.checks as Record<string, unknown> });
  crud({
    path: '/api/posture-checks', idParam: 'postureCheckId', tag: 'Posture checks', noun: 'posture check', plural: 'posture checks', resource: 'posture_checks',
    items: (ctx) => objs(ctx).postureChecks, json: J.postureCheckJson, input: pcInput, schema: S.PostureCheckUpdate,
    create: (acc, i) => manager.createPostureCheck(acc, i), update: (acc, id, i) => manager.updatePostureCheck(acc, id, i),
    remove: (acc, id) => manager.deletePostureCheck(acc, id),
  });

  // ----- events -----
  add('GET', '/api/events/audit', 'Events', 'Audit events, newest first', read('events', true), async (ctx) => {
    const events = await manager.listEvents(ctx.accountId);
    return events.map((e) => J.eventJson(ctx.state, e));
  });

  add('GET', '/api/events/network-traffic', 'Events', 'Traffic events, paged (filters: page, page_size, user_id, reporter_id, source_id, destination_id, protocol, type, connection_type, direction, search, start_date, end_date)', read('events'), async (ctx) => {
    const q = parseNetworkTrafficQuery(ctx.query as Record<string, string>);
    if (!deps.flowStore) return { data: [], page: q.page ?? 1, page_size: q.pageSize ?? 50, total_records: 0, total_pages: 0 };
    const state = ctx.state;
    const byIp = new Map([...state.peers.values()].map((p) => [p.ip, p] as const));
    const byKey = new Map([...state.peers.values()].map((p) => [p.key, p] as const));
    const objs = accountObjects(state);
    const directory: FlowEventDirectory = {
      endpoint(resourceId, ip) {
        const peer = (resourceId ? state.peers.get(resourceId) : undefined) ?? byIp.get(ip);
        if (peer) return { id: peer.id, type: 'PEER', name: peer.name, os: peer.meta.OS, dnsLabel: peer.dnsLabel };
        const res = resourceId ? objs.networkResources.get(resourceId) : undefined;
        if (res) return { id: res.id, type: `${res.type.toUpperCase()}_RESOURCE`, name: res.name };
        return undefined;
      },
      user: (id) => state.users.get(id),
      policy(ruleOrPolicyId) {
        const p = state.policies.find((x) => x.id === ruleOrPolicyId || x.rules.some((r) => r.id === ruleOrPolicyId));
        return p ? { name: p.name } : undefined;
      },
      reporter: (r) => r.reporterId ?? byKey.get(r.reporterKey)?.id,
    };
    return toNetworkTrafficEventsResponse(await deps.flowStore.query({ ...q, accountId: ctx.accountId }), directory);
  });

  list.push(...lookupEndpoints({ manager, oidc: deps.oidc ?? [], geo: deps.geo }));
  return list;
}

function res(resource: import('./access.js').Resource, write: boolean, list: boolean): Endpoint['access'] {
  return { kind: 'resource', resource, write, list };
}
