import type { Generated } from 'kysely';

/**
 * Table shapes as Kysely sees them. The same SQL runs on SQLite and PostgreSQL, so the column
 * types are the common subset: TEXT, INTEGER (booleans as 0/1) and BIGINT (Unix ms, counters).
 * Lists and small objects are JSON text.
 */
export interface AccountsTable {
  id: string;
  domain: string;
  domain_category: string;
  dns_domain: string;
  network: string;
  serial: number;
  settings_json: string;
  created_at: number;
  created_by: string;
}

export interface UsersTable {
  id: string;
  account_id: string;
  email: string;
  name: string;
  role: string;
  is_service_user: number;
  blocked: number;
  auto_groups_json: string;
  created_at: number;
  last_login: number;
}

export interface GroupsTable {
  id: string;
  account_id: string;
  name: string;
  issued: string;
}

export interface GroupPeersTable {
  account_id: string;
  group_id: string;
  peer_id: string;
}

export interface PoliciesTable {
  id: string;
  account_id: string;
  name: string;
  description: string;
  enabled: number;
  source_posture_checks_json: string;
  /** Rules in order, as JSON (a policy is always read and replaced whole). */
  rules_json: string;
  position: Generated<number>;
}

export interface SetupKeysTable {
  id: string;
  account_id: string;
  name: string;
  key_hash: string;
  key_masked: string;
  type: string;
  expires_at: number;
  usage_limit: number;
  used_times: number;
  last_used: number;
  revoked: number;
  auto_groups_json: string;
  ephemeral: number;
  allow_extra_dns_labels: number;
  created_at: number;
  updated_at: number;
}

export interface PeersTable {
  id: string;
  account_id: string;
  wg_pub_key: string;
  ip: string;
  dns_label: string;
  extra_dns_labels_json: string;
  name: string;
  ssh_key: string;
  ssh_enabled: number;
  meta_json: string;
  user_id: string;
  setup_key_id: string;
  ephemeral: number;
  login_expiration_enabled: number;
  inactivity_expiration_enabled: number;
  approval_required: number;
  connected: number;
  last_seen: number;
  last_login: number;
  created_at: number;
}

export interface EventsTable {
  id: string;
  account_id: string;
  timestamp: number;
  activity_code: string;
  initiator_id: string;
  target_id: string;
  meta_json: string;
}

export interface InstanceTable {
  key: string;
  value: string;
}

/**
 * Entities added for the REST API (routes, name-server groups, posture checks, networks and their
 * resources/routers, DNS zones). Each is read and replaced whole, so the row is its JSON plus the
 * keys the database needs for ownership and cascades.
 */
export interface ObjectTable {
  id: string;
  account_id: string;
  /** Parent object (network of a resource/router); '' when none. */
  parent_id: string;
  data_json: string;
}

export type ObjectTableName =
  | 'routes'
  | 'nameserver_groups'
  | 'posture_checks'
  | 'networks'
  | 'network_resources'
  | 'network_routers'
  | 'dns_zones'
  | 'user_invites';

export interface PersonalAccessTokensTable {
  id: string;
  account_id: string;
  user_id: string;
  name: string;
  hashed_token: string;
  expires_at: number;
  created_by: string;
  created_at: number;
  last_used: number;
}

/** Local (embedded identity provider) credentials. */
export interface UserCredentialsTable {
  user_id: string;
  account_id: string;
  email: string;
  password_hash: string;
}

export interface Database {
  routes: ObjectTable;
  nameserver_groups: ObjectTable;
  posture_checks: ObjectTable;
  networks: ObjectTable;
  network_resources: ObjectTable;
  network_routers: ObjectTable;
  dns_zones: ObjectTable;
  user_invites: ObjectTable;
  personal_access_tokens: PersonalAccessTokensTable;
  user_credentials: UserCredentialsTable;
  accounts: AccountsTable;
  users: UsersTable;
  groups: GroupsTable;
  group_peers: GroupPeersTable;
  policies: PoliciesTable;
  setup_keys: SetupKeysTable;
  peers: PeersTable;
  events: EventsTable;
  instance: InstanceTable;
}
