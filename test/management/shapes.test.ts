import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';

/**
 * Hot objects keep one hidden class however they were made. When objects of one kind had two
 * (rules parsed from the store's JSON against rules from a literal; an account copied by spread on a
 * serial bump; sessions whose window time first held an integer), the first change after a restart
 * deoptimized the map-building code and cost up to twice the CPU of later changes at 5,000 peers.
 * V8's %HaveSameMap tells, so the checks run in a child node with --allow-natives-syntax.
 */

const src = (path: string): string => pathToFileURL(fileURLToPath(new URL(`../../src/management/${path}`, import.meta.url))).href;

function sameMaps(script: string): Record<string, boolean> {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, boolean>;
}

test('account, rule and Sync session objects keep one hidden class', () => {
  const out = sameMaps(`
    const { accountRecord, accountSettings, defaultAccountSettings, policyRule } = await import(${JSON.stringify(src('types.ts'))});
    const { SyncSession } = await import(${JSON.stringify(src('updates.ts'))});
    const same = (a, b) => eval('%HaveSameMap(a, b)');
    const base = { id: 'a', domain: 'example.com', domainCategory: 'private', dnsDomain: 'netbird.selfhosted', network: '100.64.0.0/16', serial: 1, createdAt: Date.now(), createdBy: '' };
    // as the store loads it (settings JSON over the defaults) and as a new account makes it
    const loaded = accountRecord({ ...base, settings: accountSettings(JSON.parse(JSON.stringify({ peerLoginExpiration: 3600 }))) });
    const created = accountRecord({ ...base, settings: defaultAccountSettings() });
    const bumped = accountRecord({ ...loaded, serial: loaded.serial + 1 });
    const rule = { id: 'r', name: 'n', description: '', enabled: true, action: 'accept', bidirectional: true, protocol: 'all', ports: [], portRanges: [{ start: 1, end: 2 }], sources: ['g'], destinations: ['g'] };
    const sink = { send() {}, end() {} };
    const waiting = new SyncSession('a', 'p1', 'k1', sink);
    const windowed = new SyncSession('a', 'p2', 'k2', sink);
    windowed.windowStart = Date.now();
    windowed.windowEnd = performance.now() + 1000.5;
    console.log(JSON.stringify({
      accountLoadedCreated: same(loaded, created),
      accountBumped: same(loaded, bumped),
      settings: same(loaded.settings, created.settings),
      ruleJsonLiteral: same(policyRule(JSON.parse(JSON.stringify(rule))), policyRule(rule)),
      sessionWindow: same(waiting, windowed),
    }));
  `);
  assert.deepEqual(out, { accountLoadedCreated: true, accountBumped: true, settings: true, ruleJsonLiteral: true, sessionWindow: true });
});
