import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fileURLToPath } from 'node:url';
import { restoreHostDns } from '../dns/index.js';
import { VERSION, packageRoot } from '../shared/index.js';
import { DEFAULT_CONFIG_PATH } from './config.js';
import { Daemon, callDaemon, serveControl, socketPathOf, type UpRequest } from './daemon.js';
import { startEngine } from './engine.js';
import { formatStatus, type StatusJson } from './status.js';

const DEFAULT_DAEMON_ADDR = 'unix:///var/run/netbird.sock';
const UNIT_PATH = '/etc/systemd/system/netbird.service';

const HELP = `netbird: join and manage a netbird-ts (NetBird-compatible) WireGuard mesh network

Usage: netbird <command> [flags]

Commands:
  up          connect this machine to the network (registers it with --setup-key the first time)
  down        disconnect
  status      show the connection state of this machine and its peers (-d for detail, --json)
  login       register/log in with management without connecting
  logout      remove this peer from the network (it must register again)
  service     install|uninstall|start|stop|run the daemon (systemd)
  wg-quick    bring up a plain WireGuard interface from a wg-quick style config file
  version     print the version

Global flags:
  --daemon-addr unix:///PATH   where the daemon listens (default ${DEFAULT_DAEMON_ADDR})

Run "netbird <command> --help" for a command's flags.
`;

const COMMAND_HELP: Record<string, string> = {
  up: `Usage: netbird up [--setup-key KEY] [--management-url URL] [--foreground-mode] [flags]

Connects this machine to the network. The first time, register with a setup key.

Flags:
  -k, --setup-key KEY          setup key from the dashboard or "netbird-server setup-keys create"
  -m, --management-url URL     management server, e.g. http://127.0.0.1:33073 (saved in the config)
  -F, --foreground-mode        run the engine in this process instead of the daemon (Ctrl-C to stop)
  -n, --hostname NAME          name to register instead of the OS hostname
      --interface-name NAME    WireGuard interface (default wt0)
      --wireguard-port N       WireGuard UDP port (default 51820)
  -c, --config FILE            config file (default ${DEFAULT_CONFIG_PATH}; foreground mode)
      --daemon-addr ADDR       daemon socket (default ${DEFAULT_DAEMON_ADDR})
`,
  down: `Usage: netbird down [--daemon-addr ADDR]\n\nDisconnects this machine from the network; the peer stays registered.\n`,
  status: `Usage: netbird status [-d] [--json] [--daemon-addr ADDR]

Flags:
  -d, --detail     per-peer detail: connection type, endpoint, latency, handshake, bytes
      --json       machine-readable output with NetBird's field names
`,
  login: `Usage: netbird login [--setup-key KEY] [--management-url URL] [--daemon-addr ADDR]\n\nRegisters or logs in this peer without connecting.\n`,
  logout: `Usage: netbird logout [--daemon-addr ADDR]\n\nDeletes this peer from the network on the management server.\n`,
  service: `Usage: netbird service <install|uninstall|start|stop|run> [--config FILE] [--daemon-addr ADDR]

  install     write and enable the systemd unit ${UNIT_PATH}
  uninstall   stop, disable and remove the unit
  start/stop  start or stop the systemd service
  run         run the daemon in the foreground (what the unit starts)
`,
  version: `Usage: netbird version\n\nPrints the netbird-ts version.\n`,
};

const FLAGS = {
  help: { type: 'boolean', short: 'h' },
  'daemon-addr': { type: 'string' },
  config: { type: 'string', short: 'c' },
  'setup-key': { type: 'string', short: 'k' },
  'management-url': { type: 'string', short: 'm' },
  'foreground-mode': { type: 'boolean', short: 'F' },
  hostname: { type: 'string', short: 'n' },
  'interface-name': { type: 'string' },
  'wireguard-port': { type: 'string' },
  detail: { type: 'boolean', short: 'd' },
  json: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type Flags = { [K in keyof typeof FLAGS]?: (typeof FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

class UsageError extends Error {}

function upRequest(f: Flags): UpRequest {
  const req: UpRequest = {};
  if (f['setup-key']) req.setupKey = f['setup-key'];
  if (f['management-url']) {
    try {
      const u = new URL(f['management-url']);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    } catch {
      throw new UsageError(`invalid --management-url ${JSON.stringify(f['management-url'])}: expected http(s)://host[:port]`);
    }
    req.managementUrl = f['management-url'];
  }
  if (f.hostname) req.hostname = f.hostname;
  if (f['interface-name']) req.interfaceName = f['interface-name'];
  if (f['wireguard-port'] !== undefined) {
    const n = Number(f['wireguard-port']);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError('--wireguard-port must be an integer 0-65535');
    req.wireguardPort = n;
  }
  return req;
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

async function runDaemon(configPath: string, socketPath: string): Promise<number> {
  // A daemon that died while connected left the host resolver pointing at us: put it back first.
  await restoreHostDns(process.env.NB_RESOLV_CONF ? { resolvConfPath: process.env.NB_RESOLV_CONF } : {}).catch((e: Error) =>
    process.stderr.write(`netbird: could not restore the host DNS configuration: ${e.message}\n`),
  );
  const daemon = new Daemon(configPath, startEngine);
  const server = await serveControl(daemon, socketPath);
  process.stderr.write(`netbird daemon ${VERSION} listening on unix://${socketPath} (config ${configPath})\n`);
  daemon.resume().catch((e: Error) => process.stderr.write(`netbird: could not reconnect: ${e.message}\n`));
  const sig = await waitForSignal();
  process.stderr.write(`netbird daemon: ${sig}, shutting down\n`);
  server.close();
  await daemon.close();
  rmSync(socketPath, { force: true });
  return 0;
}

function systemctl(...args: string[]): number {
  const r = spawnSync('systemctl', args, { stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`netbird: systemctl not available (${r.error.message}); run "netbird service run" under your init system instead\n`);
    return 1;
  }
  return r.status ?? 1;
}

function serviceCommand(sub: string | undefined, f: Flags, configPath: string, daemonAddr: string): Promise<number> | number {
  switch (sub) {
    case 'run':
      return runDaemon(configPath, socketPathOf(daemonAddr));
    case 'install': {
      const launcher = `${packageRoot()}/bin/netbird`;
      const unit = `[Unit]
Description=netbird-ts client daemon
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=${process.execPath} ${launcher} service run --config ${configPath} --daemon-addr ${daemonAddr}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`;
      writeFileSync(UNIT_PATH, unit);
      process.stdout.write(`wrote ${UNIT_PATH}\n`);
      const rc = systemctl('daemon-reload');
      return rc === 0 ? systemctl('enable', 'netbird.service') : rc;
    }
    case 'uninstall':
      systemctl('disable', '--now', 'netbird.service');
      if (existsSync(UNIT_PATH)) rmSync(UNIT_PATH);
      process.stdout.write(`removed ${UNIT_PATH}\n`);
      return systemctl('daemon-reload');
    case 'start':
      return systemctl('start', 'netbird.service');
    case 'stop':
      return systemctl('stop', 'netbird.service');
    default:
      throw new UsageError(`netbird service needs one of install, uninstall, start, stop, run (got ${JSON.stringify(sub ?? '')})\n\n${COMMAND_HELP.service}`);
  }
}

async function foregroundUp(configPath: string, req: UpRequest): Promise<number> {
  const daemon = new Daemon(configPath, startEngine);
  await daemon.up(req);
  const st = daemon.status();
  process.stderr.write(`connected: ${st.fqdn} ${st.netbirdIp}; Ctrl-C to disconnect\n`);
  await waitForSignal();
  await daemon.close();
  return 0;
}

/** Entry point of the `netbird` CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP);
    return 0;
  }
  if (cmd === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (cmd === 'wg-quick') {
    const { runWgQuick } = await import('../wgquick/index.js');
    return runWgQuick(rest);
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: FLAGS, allowPositionals: true, strict: true });
    const f = values as Flags;
    if (f.help) {
      const h = COMMAND_HELP[cmd];
      if (!h) throw new UsageError(`unknown command ${JSON.stringify(cmd)}; run "netbird --help"`);
      process.stdout.write(h);
      return 0;
    }
    const daemonAddr = f['daemon-addr'] ?? DEFAULT_DAEMON_ADDR;
    const configPath = f.config ?? DEFAULT_CONFIG_PATH;
    const sock = (): string => socketPathOf(daemonAddr);
    switch (cmd) {
      case 'version':
        process.stdout.write(`${VERSION}\n`);
        return 0;
      case 'up': {
        const req = upRequest(f);
        if (f['foreground-mode']) return await foregroundUp(configPath, req);
        const st = await callDaemon<StatusJson>(sock(), 'POST', '/v1/up', req);
        process.stdout.write(`Connected (${st.fqdn || st.netbirdIp})\n`);
        return 0;
      }
      case 'down':
        await callDaemon(sock(), 'POST', '/v1/down', {});
        process.stdout.write('Disconnected\n');
        return 0;
      case 'login':
        await callDaemon(sock(), 'POST', '/v1/login', upRequest(f));
        process.stdout.write('Logged in successfully\n');
        return 0;
      case 'logout':
        await callDaemon(sock(), 'POST', '/v1/logout', {});
        process.stdout.write('Logged out: this peer was removed from the network\n');
        return 0;
      case 'status': {
        const st = await callDaemon<StatusJson>(sock(), 'GET', '/v1/status');
        process.stdout.write(f.json ? JSON.stringify(st, null, 2) + '\n' : formatStatus(st, f.detail === true));
        return 0;
      }
      case 'service':
        return await serviceCommand(positionals[0], f, configPath, daemonAddr);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}; run "netbird --help" for the list of commands`);
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    const msg = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? `${err.message}; run "netbird ${cmd} --help"` : err.message;
    process.stderr.write(`netbird ${cmd}: ${msg}\n`);
    return e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  }
}

export const CLI_PATH = fileURLToPath(import.meta.url);
