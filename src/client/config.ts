import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatKey, generateKeyPair, parseKey } from '../crypto/index.js';

/** What the daemon keeps between runs. The private key is the peer's identity: it survives restarts. */
export interface ClientConfig {
  privateKey: string;
  managementUrl: string;
  interfaceName: string;
  wireguardPort: number;
  /** Hostname override reported to management, optional. */
  hostname?: string;
  /** Set by `up`, cleared by `down`: the daemon reconnects on start when true. */
  connectOnStart?: boolean;
}

export const DEFAULT_CONFIG_PATH = '/etc/netbird/config.json';
export const DEFAULT_MANAGEMENT_URL = 'https://api.netbird.io:443';
export const DEFAULT_INTERFACE = 'wt0';
export const DEFAULT_WG_PORT = 51820;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function validate(c: Partial<ClientConfig>, path: string): ClientConfig {
  if (typeof c.privateKey !== 'string') throw new ConfigError(`${path}: missing privateKey`);
  parseKey(c.privateKey, `private key in ${path}`);
  if (typeof c.managementUrl !== 'string' || !/^https?:\/\//.test(c.managementUrl)) {
    throw new ConfigError(`${path}: managementUrl must be an http:// or https:// URL`);
  }
  if (typeof c.interfaceName !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(c.interfaceName)) {
    throw new ConfigError(`${path}: interfaceName must be 1-15 characters [A-Za-z0-9_.-]`);
  }
  const port = c.wireguardPort;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`${path}: wireguardPort must be an integer 0-65535`);
  }
  const out: ClientConfig = { privateKey: c.privateKey, managementUrl: c.managementUrl, interfaceName: c.interfaceName, wireguardPort: port };
  if (typeof c.hostname === 'string' && c.hostname) out.hostname = c.hostname;
  if (c.connectOnStart === true) out.connectOnStart = true;
  return out;
}

/** Loads the config, creating it (with a new key) when the file does not exist yet. */
export function loadOrCreateConfig(path: string, defaults: Partial<ClientConfig> = {}): ClientConfig {
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (text === undefined) {
    const cfg = validate(
      {
        privateKey: formatKey(generateKeyPair().privateKey),
        managementUrl: defaults.managementUrl ?? DEFAULT_MANAGEMENT_URL,
        interfaceName: defaults.interfaceName ?? DEFAULT_INTERFACE,
        wireguardPort: defaults.wireguardPort ?? DEFAULT_WG_PORT,
        ...(defaults.hostname ? { hostname: defaults.hostname } : {}),
      },
      path,
    );
    saveConfig(path, cfg);
    return cfg;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON (${(e as Error).message}); fix or remove it (removing it creates a new peer identity)`);
  }
  return validate(parsed as Partial<ClientConfig>, path);
}

/** Writes atomically (temp file + rename) with mode 0600: it holds the private key. */
export function saveConfig(path: string, cfg: ClientConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}
