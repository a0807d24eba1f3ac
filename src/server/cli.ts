import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AccountManager, ManagementError, SERVER_KEY_FILE, SQLITE_FILE, Store } from '../management/index.js';
import { BackupError, backupSqlite, restoreSqlite } from './backup.js';
import { preparePrivateDataDir } from './datadir.js';
import { DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT, NetbirdServer } from './server.js';

const HELP = `netbird-server: NetBird management, signal and relay on one port (plus optional STUN)

Usage:
  netbird-server [options]                      run the server
  netbird-server setup-keys create [options]    print a new setup key for this instance's account
  netbird-server backup FILE [--data-dir DIR]   copy the SQLite database to FILE (safe while running)
  netbird-server restore FILE [--data-dir DIR]  put a backup in place (server stopped; the old
                                                database is kept as management.db.before-restore-*)

Server options:
  --data-dir DIR        state directory (SQLite database, server keys); default ./data
  --listen HOST:PORT    TCP address for gRPC (management + signal), relay (/relay) and HTTP;
                        default ${DEFAULT_LISTEN_HOST}:${DEFAULT_LISTEN_PORT}
  --exposed-address A   how peers reach this server, for a public deployment: HOST, HOST:PORT or
                        https://HOST[:PORT] (behind a TLS-terminating proxy); advertised as the
                        signal, relay and STUN addresses. Default: the listen address (or this
                        machine's first IPv4 address when listening on 0.0.0.0)
  --public-host HOST    older name for --exposed-address HOST
  --store-dsn DSN       use PostgreSQL (postgresql://user@host/db) instead of SQLite;
                        also read from NETBIRD_STORE_DSN
  --dns-domain DOMAIN   DNS domain for peers of a new account; default netbird.cloud
  --stun-port PORT      also serve STUN on this UDP port and advertise it
  --turn URI            advertise a TURN server (repeatable), e.g. turn:turn.example.com:3478?transport=udp
  --turn-secret SECRET  shared secret of those TURN servers (coturn static-auth-secret): peers get
                        time-based credentials, refreshed every 3/4 of 12 h
  --ephemeral-timeout SECONDS   delete ephemeral peers after this long offline; default 600
  --handshake-timeout SECONDS   a new connection must make its first request (gRPC call, HTTP
                        request, relay upgrade; TLS handshake included) within this time; default 10.
                        Connections still waiting are also capped per client address and in all
  --tls-cert FILE       PEM certificate: serve TLS (then also --tls-key)
  --tls-key FILE        PEM private key
  --oidc-issuer URL     also accept JWTs of this external OIDC issuer (REST API and peer SSO login)
  --oidc-audience AUD   audience (client id) those JWTs must carry (required with --oidc-issuer)
  --oidc-jwks-url URL   JWKS URL (default: from the issuer's discovery document)
  --oidc-groups-claim C JWT claim with group names for IdP group sync (default "groups")
  --disable-embedded-idp  do not serve the embedded identity provider at /oauth2
  --trusted-proxy ADDR  a reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For header
                        names the real client; login and token failure limits then apply per
                        client instead of to the proxy. Default: none (the header is ignored)
  --flow-interval SECONDS   how often peers send traffic events when an account enables them
                        (settings.extra.network_traffic_logs_enabled); default 60
  --disable-flow        do not run the traffic-event collector
  --config FILE         JSON file with any of these options by name, e.g. {"listen": "0.0.0.0:443",
                        "data-dir": "/var/lib/netbird", "turn": ["turn:..."]}
  -h, --help            show this help

Every option can also come from the environment as NETBIRD_<NAME> (e.g. NETBIRD_LISTEN,
NETBIRD_DATA_DIR, NETBIRD_STORE_DSN; repeatable options comma-separated). Precedence: flags, then
environment, then the config file. Health: GET /health; Prometheus metrics: GET /metrics.

REST API (same port): GET /api/instance; first user with
  curl -X POST <url>/api/setup -d '{"email":"..","password":"..","name":"..","create_pat":true}'

setup-keys create options:
  --reusable            key can register many peers (default: one-off)
  --ephemeral           peers registered with it are deleted after 10 min offline
  --name NAME           key name (default "cli")
  --expires-in SECONDS  key lifetime (default: never expires)
  --usage-limit N       at most N registrations for a reusable key (default unlimited)
  --data-dir DIR, --store-dsn DSN   as above
  --json                print JSON ({"key", "id", "account_id", ...}) instead of text
`;

function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v);
  if (!m) throw new UsageError(`--listen expects HOST:PORT (e.g. 0.0.0.0:33073), got ${JSON.stringify(v)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--listen port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

class UsageError extends Error {}

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} expects a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

function positiveSeconds(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} expects a positive number of seconds, got ${JSON.stringify(v)}`);
  return Math.round(n * 1000);
}

async function setupKeysCreate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      reusable: { type: 'boolean' },
      ephemeral: { type: 'boolean' },
      name: { type: 'string' },
      'expires-in': { type: 'string' },
      'usage-limit': { type: 'string' },
      'data-dir': { type: 'string' },
      'store-dsn': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const dataDir = resolve(values['data-dir'] ?? './data');
  const dsn = values['store-dsn'] ?? process.env.NETBIRD_STORE_DSN;
  if (!dsn) preparePrivateDataDir(dataDir);
  const store = await Store.open(dsn ? { kind: 'postgres', dsn } : { kind: 'sqlite', path: resolve(dataDir, SQLITE_FILE) });
  try {
    const manager = await AccountManager.open({ store });
    try {
      const account = await manager.defaultAccount();
      const { key, setupKey } = await manager.createSetupKey(account.id, {
        name: values.name ?? 'cli',
        type: values.reusable ? 'reusable' : 'one-off',
        ephemeral: values.ephemeral ?? false,
        expiresIn: intOption('expires-in', values['expires-in']),
        usageLimit: intOption('usage-limit', values['usage-limit']),
      });
      if (values.json) {
        process.stdout.write(
          JSON.stringify({
            key,
            id: setupKey.id,
            account_id: account.id,
            name: setupKey.name,
            type: setupKey.type,
            ephemeral: setupKey.ephemeral,
            usage_limit: setupKey.usageLimit,
            expires: setupKey.expiresAt ? new Date(setupKey.expiresAt).toISOString() : null,
          }) + '\n',
        );
      } else {
        process.stdout.write(`${key}\n`);
        process.stderr.write(
          `${setupKey.type} ${setupKey.ephemeral ? 'ephemeral ' : ''}setup key for account ${account.id}` +
            `${setupKey.expiresAt ? `, expires ${new Date(setupKey.expiresAt).toISOString()}` : ''}.\n` +
            `Join a peer with: netbird up --management-url <this server's URL> --setup-key ${key}\n`,
        );
      }
      return 0;
    } finally {
      manager.close();
    }
  } finally {
    await store.close();
  }
}

/** An exposed address: HOST, HOST:PORT, [V6]:PORT or http(s)://HOST[:PORT]. */
export function parseExposedAddress(v: string): { host: string; port?: number; tls?: boolean } {
  if (v.includes('://')) {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new UsageError(`--exposed-address ${JSON.stringify(v)} is not a valid URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--exposed-address: use http:// or https://, got ${u.protocol}`);
    const tls = u.protocol === 'https:';
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : tls ? 443 : 80, tls };
  }
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+))(?::(\d+))?$/.exec(v);
  if (!m) throw new UsageError(`--exposed-address expects HOST, HOST:PORT or https://HOST[:PORT], got ${JSON.stringify(v)}`);
  const port = m[3] !== undefined ? Number(m[3]) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) throw new UsageError(`--exposed-address port ${port} is out of range`);
  return port !== undefined ? { host: m[1] ?? m[2]!, port } : { host: m[1] ?? m[2]! };
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

/** Fills options missing from the command line from NETBIRD_<NAME> and then the --config file. */
function withDefaults(values: Record<string, unknown>, spec: OptionSpec): Record<string, unknown> {
  let file: Record<string, unknown> = {};
  const configPath = values.config as string | undefined;
  if (configPath !== undefined) {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read --config ${configPath}: ${(e as Error).message}`);
    }
    try {
      file = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--config ${configPath} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new UsageError(`--config ${configPath} must hold a JSON object`);
    for (const k of Object.keys(file)) if (!(k in spec) || k === 'config' || k === 'help') throw new UsageError(`--config ${configPath}: unknown option ${JSON.stringify(k)}`);
  }
  const out: Record<string, unknown> = { ...values };
  for (const [name, o] of Object.entries(spec)) {
    if (name === 'help' || name === 'config' || out[name] !== undefined) continue;
    const env = process.env[`NETBIRD_${name.toUpperCase().replace(/-/g, '_')}`];
    if (env !== undefined && env !== '') {
      out[name] = o.type === 'boolean' ? /^(1|true|yes)$/i.test(env) : o.multiple ? env.split(',').map((x) => x.trim()).filter(Boolean) : env;
      continue;
    }
    if (file[name] === undefined) continue;
    const v = file[name];
    const ok = o.type === 'boolean' ? typeof v === 'boolean' : o.multiple ? Array.isArray(v) && v.every((x) => typeof x === 'string') : typeof v === 'string' || typeof v === 'number';
    if (!ok) throw new UsageError(`--config: option ${JSON.stringify(name)} must be ${o.type === 'boolean' ? 'true or false' : o.multiple ? 'a list of strings' : 'a string'}`);
    out[name] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}

const SERVER_OPTIONS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  listen: { type: 'string' },
  'exposed-address': { type: 'string' },
  'public-host': { type: 'string' },
  'store-dsn': { type: 'string' },
  'dns-domain': { type: 'string' },
  'stun-port': { type: 'string' },
  turn: { type: 'string', multiple: true },
  'turn-secret': { type: 'string' },
  'ephemeral-timeout': { type: 'string' },
  'handshake-timeout': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'oidc-issuer': { type: 'string' },
  'oidc-audience': { type: 'string' },
  'oidc-jwks-url': { type: 'string' },
  'oidc-groups-claim': { type: 'string' },
  'disable-embedded-idp': { type: 'boolean' },
  'trusted-proxy': { type: 'string', multiple: true },
  'flow-interval': { type: 'string' },
  'disable-flow': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function runServer(argv: string[]): Promise<number> {
  const parsed = parseArgs({ args: argv, options: SERVER_OPTIONS, strict: true });
  if (parsed.values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const values = withDefaults(parsed.values, SERVER_OPTIONS) as typeof parsed.values;
  const exposed = values['exposed-address'] !== undefined ? parseExposedAddress(values['exposed-address']) : values['public-host'] !== undefined ? { host: values['public-host'] } : undefined;
  if (values['oidc-issuer'] !== undefined && !values['oidc-audience']) throw new UsageError('--oidc-issuer needs --oidc-audience (the client id in the tokens)');
  const oidc = values['oidc-issuer']
    ? [{ issuer: values['oidc-issuer'], audience: values['oidc-audience']!, jwksUrl: values['oidc-jwks-url'], groupsClaim: values['oidc-groups-claim'] }]
    : [];
  const listen = values.listen ? parseListen(values.listen) : { host: DEFAULT_LISTEN_HOST, port: DEFAULT_LISTEN_PORT };
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (values['turn-secret'] !== undefined && !values.turn?.length) throw new UsageError('--turn-secret needs at least one --turn URI');
  const dataDir = resolve(values['data-dir'] ?? './data');
  const dsn = values['store-dsn'] ?? process.env.NETBIRD_STORE_DSN;
  // Signal handlers go in before the server starts and prints its banner (scripts send SIGTERM as
  // soon as they see it; a signal that beat the handlers killed the process before the store was
  // closed): a signal during start-up gets a clean shutdown once start-up is done, a second one
  // forces the exit.
  const stopRequested = new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) {
        process.stderr.write('netbird-server: second signal, exiting without a clean shutdown\n');
        process.exit(130);
      }
      stopping = true;
      resolveStop();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const server = await NetbirdServer.start({
    dataDir,
    host: listen.host,
    port: listen.port,
    publicHost: exposed?.host,
    publicPort: exposed?.port,
    publicTls: exposed?.tls,
    postgresDsn: dsn,
    dnsDomain: values['dns-domain'],
    stunPort: intOption('stun-port', values['stun-port']),
    turn: values.turn?.length ? { uris: values.turn, secret: values['turn-secret'] } : undefined,
    ephemeralTimeoutMs: values['ephemeral-timeout'] !== undefined ? intOption('ephemeral-timeout', values['ephemeral-timeout'])! * 1000 : undefined,
    identifyTimeoutMs: values['handshake-timeout'] !== undefined ? positiveSeconds('handshake-timeout', values['handshake-timeout']) : undefined,
    tls: values['tls-cert'] ? { cert: readFileSync(values['tls-cert'], 'utf8'), key: readFileSync(values['tls-key']!, 'utf8') } : undefined,
    oidc,
    embeddedIdp: !values['disable-embedded-idp'],
    trustedProxies: values['trusted-proxy'],
    flow: !values['disable-flow'],
    flowIntervalSeconds: intOption('flow-interval', values['flow-interval']),
    log: (m) => process.stderr.write(m + '\n'),
  });
  const lines = [
    `netbird-server listening on ${listen.host}:${server.port} (${server.tls ? 'TLS' : 'plaintext h2c'}): management + signal gRPC, relay at /relay, REST API at /api`,
    `  dashboard: ${server.managementUrl}/   health: ${server.managementUrl}/health   metrics: ${server.managementUrl}/metrics`,
    `  store: ${dsn ? 'PostgreSQL' : `SQLite ${resolve(dataDir, SQLITE_FILE)}`}`,
    ...(server.stun ? [`  STUN on UDP ${server.stun.address}:${server.stun.port}`] : []),
    `  create a setup key: netbird-server setup-keys create --reusable --data-dir ${dataDir}`,
    `  join a peer:        netbird up --management-url ${server.managementUrl} --setup-key <KEY>`,
    ...(server.management.manager.hasUsers()
      ? []
      : [`  first user:         curl -X POST ${server.managementUrl}/api/setup -d '{"email":"you@example.com","password":"<8+ chars>","name":"You","create_pat":true}'`]),
  ];
  process.stdout.write(lines.join('\n') + '\n');

  await stopRequested;
  process.stdout.write('netbird-server: shutting down\n');
  await server.close();
  return 0;
}

const PG_BACKUP_HINT =
  'this server uses PostgreSQL: back it up with pg_dump (e.g. pg_dump --format=custom --file netbird.dump "$NETBIRD_STORE_DSN") ' +
  'and restore with pg_restore (pg_restore --clean --if-exists --dbname "$NETBIRD_STORE_DSN" netbird.dump); see the README';

async function backupOrRestore(action: 'backup' | 'restore', argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { 'data-dir': { type: 'string' }, 'store-dsn': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values['store-dsn'] ?? process.env.NETBIRD_STORE_DSN) {
    process.stderr.write(`netbird-server ${action}: ${PG_BACKUP_HINT}\n`);
    return 2;
  }
  if (positionals.length !== 1) throw new UsageError(`${action} takes one FILE, e.g. netbird-server ${action} /var/backups/netbird-$(date +%F).db`);
  const dataDir = resolve(values['data-dir'] ?? process.env.NETBIRD_DATA_DIR ?? './data');
  const file = resolve(positionals[0]!);
  preparePrivateDataDir(dataDir);
  if (action === 'backup') {
    const r = await backupSqlite(dataDir, file);
    process.stderr.write(
      `backed up ${resolve(dataDir, SQLITE_FILE)} to ${file} (${r.bytes} bytes; ${r.accounts} account${r.accounts === 1 ? '' : 's'}, ${r.peers} peer${r.peers === 1 ? '' : 's'}).\n` +
        `Keep the data directory's key files too (${SERVER_KEY_FILE}, *.secret); restore with: netbird-server restore ${file} --data-dir ${dataDir}\n`,
    );
    return 0;
  }
  const r = restoreSqlite(dataDir, file);
  process.stderr.write(
    `restored ${file} to ${resolve(dataDir, SQLITE_FILE)}.` +
      (r.keptAs ? ` The database it replaced is kept as ${r.keptAs} (delete it once the restored server works).` : '') +
      '\nStart the server as usual.\n',
  );
  return 0;
}

/** Entry point of bin/netbird-server. Returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === 'setup-keys') {
      if (argv[1] !== 'create') {
        process.stderr.write(`netbird-server setup-keys: unknown action ${JSON.stringify(argv[1] ?? '')}; try "setup-keys create --help"\n`);
        return 2;
      }
      return await setupKeysCreate(argv.slice(2));
    }
    if (argv[0] === 'backup' || argv[0] === 'restore') return await backupOrRestore(argv[0], argv.slice(1));
    if (argv[0] !== undefined && !argv[0].startsWith('-')) {
      process.stderr.write(`netbird-server: unknown command ${JSON.stringify(argv[0])}; see netbird-server --help\n`);
      return 2;
    }
    return await runServer(argv);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`netbird-server: ${(err as Error).message}; see netbird-server --help\n`);
      return 2;
    }
    if (err instanceof BackupError) {
      process.stderr.write(`netbird-server: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ManagementError) {
      process.stderr.write(`netbird-server: ${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') {
      process.stderr.write(`netbird-server: the listen address is already in use (${e.message}); pick another with --listen HOST:PORT\n`);
      return 1;
    }
    if (e.code === 'EACCES') {
      process.stderr.write(`netbird-server: permission denied (${e.message}); ports below 1024 need root, or check --data-dir permissions\n`);
      return 1;
    }
    process.stderr.write(`netbird-server: ${e.stack ?? String(e)}\n`);
    return 1;
  }
}
