import { VERSION } from '../shared/index.js';

const HELP = `netbird: join and manage a netbird-ts (NetBird-compatible) WireGuard mesh network

Usage: netbird <command> [flags]

Commands:
  version            print the version
  help               show this help

Run "netbird <command> --help" for a command's flags.
`;

/** Entry point of the `netbird` CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    case 'version':
    case '--version':
      if (rest.includes('--help')) {
        process.stdout.write('Usage: netbird version\n\nPrints the netbird-ts version.\n');
        return 0;
      }
      process.stdout.write(`${VERSION}\n`);
      return 0;
    default:
      process.stderr.write(`netbird: unknown command ${JSON.stringify(cmd)}; run "netbird --help" for the list of commands\n`);
      return 2;
  }
}
