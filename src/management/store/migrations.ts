import { type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * Versioned schema migrations, applied in name order by Kysely's Migrator (which records them in
 * its own `kysely_migration` table). Never edit a released migration: add a new one.
 * Only portable DDL is used so the same migrations run on SQLite and PostgreSQL.
 */
/** Tables of 0002 that hold one JSON object per row (see schema.ts ObjectTable). */
const OBJECT_TABLES = ['routes', 'nameserver_groups', 'posture_checks', 'networks', 'network_resources', 'network_routers', 'dns_zones'] as const;

const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('instance')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('accounts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('domain_category', 'text', (c) => c.notNull())
        .addColumn('dns_domain', 'text', (c) => c.notNull())
        .addColumn('network', 'text', (c) => c.notNull())
        .addColumn('serial', 'bigint', (c) => c.notNull())
        .addColumn('settings_json', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('is_service_user', 'integer', (c) => c.notNull())
        .addColumn('blocked', 'integer', (c) => c.notNull())
        .addColumn('auto_groups_json', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_login', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('users_account').on('users').column('account_id').execute();
      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('issued', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('groups_account').on('groups').column('account_id').execute();
      await db.schema
        .createTable('peers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('wg_pub_key', 'text', (c) => c.notNull().unique())
        .addColumn('ip', 'text', (c) => c.notNull())
        .addColumn('dns_label', 'text', (c) => c.notNull())
        .addColumn('extra_dns_labels_json', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('ssh_key', 'text', (c) => c.notNull())
        .addColumn('ssh_enabled', 'integer', (c) => c.notNull())
        .addColumn('meta_json', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('setup_key_id', 'text', (c) => c.notNull())
        .addColumn('ephemeral', 'integer', (c) => c.notNull())
        .addColumn('login_expiration_enabled', 'integer', (c) => c.notNull())
        .addColumn('inactivity_expiration_enabled', 'integer', (c) => c.notNull())
        .addColumn('approval_required', 'integer', (c) => c.notNull())
        .addColumn('connected', 'integer', (c) => c.notNull())
        .addColumn('last_seen', 'bigint', (c) => c.notNull())
        .addColumn('last_login', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        // The database itself refuses a duplicate address or label, whatever the process does.
        .addUniqueConstraint('peers_account_ip', ['account_id', 'ip'])
        .addUniqueConstraint('peers_account_dns_label', ['account_id', 'dns_label'])
        .execute();
      await db.schema
        .createTable('group_peers')
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('peer_id', 'text', (c) => c.notNull().references('peers.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('group_peers_pk', ['group_id', 'peer_id'])
        .execute();
      await db.schema.createIndex('group_peers_account').on('group_peers').column('account_id').execute();
      await db.schema.createIndex('group_peers_peer').on('group_peers').column('peer_id').execute();
      await db.schema
        .createTable('policies')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('source_posture_checks_json', 'text', (c) => c.notNull())
        .addColumn('rules_json', 'text', (c) => c.notNull())
        .addColumn('position', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('policies_account').on('policies').column('account_id').execute();
      await db.schema
        .createTable('setup_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('key_masked', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('usage_limit', 'bigint', (c) => c.notNull())
        .addColumn('used_times', 'bigint', (c) => c.notNull())
        .addColumn('last_used', 'bigint', (c) => c.notNull())
        .addColumn('revoked', 'integer', (c) => c.notNull())
        .addColumn('auto_groups_json', 'text', (c) => c.notNull())
        .addColumn('ephemeral', 'integer', (c) => c.notNull())
        .addColumn('allow_extra_dns_labels', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('setup_keys_account').on('setup_keys').column('account_id').execute();
      await db.schema
        .createTable('events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('timestamp', 'bigint', (c) => c.notNull())
        .addColumn('activity_code', 'text', (c) => c.notNull())
        .addColumn('initiator_id', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('meta_json', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_account_time').on('events').columns(['account_id', 'timestamp']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const t of ['events', 'setup_keys', 'policies', 'group_peers', 'peers', 'groups', 'users', 'accounts', 'instance']) {
        await db.schema.dropTable(t).execute();
      }
    },
  },
  '0002_api_entities': {
    async up(db: Kysely<unknown>): Promise<void> {
      for (const t of OBJECT_TABLES) {
        await db.schema
          .createTable(t)
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('parent_id', 'text', (c) => c.notNull())
          .addColumn('data_json', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex(`${t}_account`).on(t).column('account_id').execute();
      }
      await db.schema
        .createTable('personal_access_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('hashed_token', 'text', (c) => c.notNull().unique())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('personal_access_tokens_account').on('personal_access_tokens').column('account_id').execute();
      await db.schema
        .createTable('user_credentials')
        .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const t of ['user_credentials', 'personal_access_tokens', ...OBJECT_TABLES]) await db.schema.dropTable(t).execute();
    },
  },
  '0003_user_invites': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('user_invites')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('parent_id', 'text', (c) => c.notNull())
        .addColumn('data_json', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('user_invites_account').on('user_invites').column('account_id').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('user_invites').execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  },
};

/** Name of the newest migration (what a fully migrated store reports). */
export const LATEST_MIGRATION = Object.keys(migrations).sort().at(-1)!;
