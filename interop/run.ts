// `npm run interop`: the scenario matrix against the official NetBird client and combined server.
//   npm run interop -- --client /path/to/netbird --server /path/to/combined [--only 1,3]
// (or NB_OFFICIAL_CLIENT / NB_OFFICIAL_SERVER). Prints scenario x result with timings; exits 1 when a
// case fails, 2 when the binaries are missing.
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from '../test/lab/index.js';
import { SCENARIOS, Recorder, type Row } from './scenarios.js';

const HELP = `npm run interop -- --client PATH --server PATH [--only IDS] [--json]

Runs the interoperability matrix between netbird-ts and the official NetBird in a network-namespace
lab (root, Linux), with official binaries you provide:
  --client PATH   path of an official netbird client binary; or NB_OFFICIAL_CLIENT
  --server PATH   path of an official combined server binary; or NB_OFFICIAL_SERVER
  --only IDS      comma-separated scenario ids (default: all)
  --json          print the rows as JSON too
Logs of every scenario go to artifacts/interop/.

Scenarios:
${SCENARIOS.map((s) => `  ${s.id}. ${s.title}`).join('\n')}
`;

function executable(p: string | undefined): p is string {
  if (!p) return false;
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { client: { type: 'string' }, server: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const client = values.client ?? process.env['NB_OFFICIAL_CLIENT'];
  const server = values.server ?? process.env['NB_OFFICIAL_SERVER'];
  const missing = [!executable(client) && `--client (official netbird client${client ? `: ${client} is not executable` : ''})`, !executable(server) && `--server (official combined server${server ? `: ${server} is not executable` : ''})`].filter(Boolean);
  if (missing.length) {
    process.stderr.write(`interop needs the official NetBird binaries: ${missing.join(', ')}\n\n${HELP}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('interop builds network namespaces: run it as root\n');
    return 2;
  }
  const version = (await run(client!, ['version'], { check: false })).stdout.trim();
  const only = values.only ? new Set(values.only.split(',')) : undefined;
  const artifacts = join(process.cwd(), 'artifacts', 'interop');
  mkdirSync(artifacts, { recursive: true });
  const rows: Row[] = [];
  console.log(`official client ${version}; ${client}, ${server}\n`);
  for (const s of SCENARIOS) {
    if (only && !only.has(s.id)) continue;
    console.log(`== ${s.id}. ${s.title}`);
    const t0 = Date.now();
    const rec = new Recorder(s.id, (r) => console.log(`  ${r.ok ? 'PASS' : 'FAIL'}  ${r.case}${r.ms !== undefined ? ` (${(r.ms / 1000).toFixed(1)} s)` : ''}${r.detail ? `  [${r.detail}]` : ''}`));
    await s.run({ client: client!, server: server! }, rec);
    writeFileSync(join(artifacts, `scenario-${s.id}.log`), rec.logs.join('\n'));
    console.log(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
    rows.push(...rec.rows);
  }
  const failed = rows.filter((r) => !r.ok);
  console.log('| scenario | case | result | time |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.scenario} | ${r.case} | ${r.ok ? 'pass' : `FAIL ${r.detail}`} | ${r.ms !== undefined ? `${(r.ms / 1000).toFixed(1)} s` : ''} |`);
  console.log(`\n${rows.length - failed.length}/${rows.length} cases passed`);
  if (values.json) console.log(JSON.stringify(rows));
  return failed.length ? 1 : 0;
}

process.exitCode = await main();
