import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { KyselyFlowStore } from '../../src/flow/index.js';
import { TestPeer } from '../management/helpers.js';
import { CHROMIUM, a11yIssues, dashboardWorld, shot } from './helpers.js';

/**
 * The dashboard's further pages end to end (a real netbird-server, Debian's Chromium): a peer's
 * detail view, posture checks (attached to a policy), DNS zones with records, networks with a
 * resource and a router, and account settings. What the browser did is checked through the API.
 */

const EMAIL = 'owner@example.com';
const PASSWORD = 'correct horse battery';

async function go(page: Page, label: string, heading: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await audit(page, label);
}

async function audit(page: Page, what: string): Promise<void> {
  await page.waitForLoadState('networkidle').catch(() => {});
  assert.deepEqual(await a11yIssues(page), [], `accessibility of ${what}`);
}

async function switchState(page: Page, name: string, checked: boolean): Promise<void> {
  await page.locator(`[role="switch"][aria-label="${name}"][aria-checked="${checked}"]`).waitFor();
}

test('web dashboard: peer detail, posture checks, DNS zones, networks and settings in Chromium', { skip: existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (apt-get install -y chromium)`, timeout: 170_000 }, async (t) => {
  const { tmp, url, port, peers, page, consoleErrors, step } = await dashboardWorld(t, 'nbwb2-', 'FAILED-more-');

  // The owner and a bearer token for checking what the UI did (the embedded IdP's password grant).
  const setup = await fetch(url + '/api/setup', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: PASSWORD, name: 'Olivia Owner' }) });
  assert.equal(setup.status, 200, await setup.clone().text());
  const tok = await fetch(url + '/oauth2/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', client_id: 'netbird', username: EMAIL, password: PASSWORD, scope: 'openid profile email' }).toString(),
  });
  assert.equal(tok.status, 200);
  const bearer = ((await tok.json()) as { access_token: string }).access_token;
  const call = async <T,>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    assert.equal(r.status, 200, `${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text) as T;
  };
  const key = await call<{ key: string }>('POST', '/api/setup-keys', { name: 'test', type: 'reusable', expires_in: 86400, usage_limit: 0, auto_groups: [] });
  const p1 = new TestPeer(`127.0.0.1:${port}`, 'web-peer-1', { OS: 'Debian GNU/Linux', OSVersion: '12' });
  peers.push(p1);
  await p1.login(key.key);
  await p1.sync();
  const p2 = new TestPeer(`127.0.0.1:${port}`, 'router-1');
  peers.push(p2);
  await p2.login(key.key);
  const ops = await call<{ id: string }>('POST', '/api/groups', { name: 'ops', peers: [] });


  await step('sign in with the password', async () => {
    await page.goto(url + '/');
    await page.getByLabel('E-mail').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Peers' }).waitFor();
  });

  await step('peer detail: facts, SSH switch, rename and groups go through the API', async () => {
    await page.locator('tr[data-peer="web-peer-1"]').getByRole('link', { name: 'web-peer-1' }).click();
    await page.getByRole('heading', { level: 1, name: 'web-peer-1' }).waitFor();
    const facts = page.getByRole('definition');
    await facts.filter({ hasText: /^100\.\d+\.\d+\.\d+$/ }).waitFor();
    // The account's DNS domain arrives with its own request.
    await facts.filter({ hasText: /^web-peer-1\./ }).waitFor();
    const text = (await page.locator('dl.facts').textContent()) ?? '';
    assert.match(text, /Debian GNU\/Linux 12/, 'OS shown');
    assert.match(text, /Locationunknown/, 'loopback peers have no location');
    assert.match(text, /Last seenonline now/);
    await page.getByText('Online', { exact: true }).first().waitFor();
    await audit(page, 'peer detail');
    await shot(page, '30-peer-detail');
    const id = page.url().split('/').at(-1)!;

    await page.getByRole('switch', { name: 'SSH access' }).click();
    await switchState(page, 'SSH access', true);
    assert.equal((await call<{ ssh_enabled: boolean }>('GET', `/api/peers/${id}`)).ssh_enabled, true);

    await page.getByLabel('Peer name').fill('detail-peer');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.getByRole('heading', { level: 1, name: 'detail-peer' }).waitFor();
    const after = await call<{ name: string; dns_label: string }>('GET', `/api/peers/${id}`);
    assert.equal(after.name, 'detail-peer');
    assert.match(after.dns_label, /^detail-peer/);

    await page.getByRole('group', { name: /Assigned groups/ }).getByLabel('ops').check();
    await page.getByRole('button', { name: 'Save groups' }).click();
    await page.getByRole('form', { name: 'Groups' }).getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const g = await call<{ peers: Array<{ id: string }> }>('GET', `/api/groups/${ops.id}`);
    assert.deepEqual(g.peers.map((x) => x.id), [id]);
    // Back to the list through the breadcrumb link.
    await page.getByRole('link', { name: 'All peers' }).click();
    await page.locator('tr[data-peer="detail-peer"]').waitFor();
  });

  let checkId = '';
  await step('posture checks: create (bad version on its field), edit, attach to a policy, delete', async () => {
    await go(page, 'Posture checks', 'Posture checks');
    await page.getByLabel('Check name').fill('Recent clients');
    await page.getByLabel('NetBird version', { exact: true }).check();
    const min = page.getByLabel('Minimum NetBird version');
    await min.fill('latest');
    await page.getByRole('button', { name: 'Create check' }).click();
    await page.locator('.field-error').first().waitFor();
    assert.equal(await min.getAttribute('aria-invalid'), 'true');
    assert.match((await page.locator('.field-error').first().textContent()) ?? '', /version like 0\.60\.0/);
    await min.fill('0.30.0');
    await page.getByLabel('Location', { exact: true }).check();
    await page.getByLabel('Location rule').selectOption('allow');
    // The first country list loads the geolocation database (seconds on a busy machine).
    await page.getByLabel('Country').selectOption('DE', { timeout: 40_000 });
    await page.getByLabel('City (optional)').fill('Berlin');
    await page.getByRole('button', { name: 'Add location' }).click();
    await page.getByRole('list', { name: 'Locations' }).getByText('Berlin, Germany').waitFor();
    await page.getByLabel('Operating system', { exact: true }).check();
    await page.getByLabel('Allow iOS').uncheck();
    await page.getByLabel('Linux minimum kernel version').fill('5.10');
    await audit(page, 'posture check form');
    await page.getByRole('button', { name: 'Create check' }).click();
    const row = page.locator('tr[data-check="Recent clients"]');
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /NetBird ≥ 0\.30\.0.*Linux ≥ 5\.10.*Only from Berlin \(DE\)/);
    await shot(page, '31-posture-checks');

    await row.getByRole('button', { name: 'Edit Recent clients' }).click();
    await page.getByRole('heading', { name: 'Edit Recent clients' }).waitFor();
    await page.getByLabel('Minimum NetBird version').fill('0.31.0');
    await page.getByLabel('Peer network range', { exact: true }).check();
    await page.getByLabel('Ranges (CIDR)').fill('10.0.0.0/8, 192.168.0.0/16');
    await page.getByLabel('Running processes', { exact: true }).check();
    await page.getByLabel('Process 1 Linux path').fill('/usr/bin/clamd');
    await page.getByRole('button', { name: 'Add process' }).click();
    await page.getByLabel('Process 2 Windows path').fill('C:\\Program Files\\Defender\\MsMpEng.exe');
    await audit(page, 'posture check edit form');
    await page.getByRole('button', { name: 'Save check' }).click();
    await row.getByText('NetBird ≥ 0.31.0').waitFor();
    const list = await call<Array<{ id: string; name: string; checks: Record<string, unknown> }>>('GET', '/api/posture-checks');
    assert.equal(list.length, 1);
    checkId = list[0]!.id;
    assert.deepEqual(list[0]!.checks.nb_version_check, { min_version: '0.31.0' });
    assert.deepEqual(list[0]!.checks.geo_location_check, { action: 'allow', locations: [{ country_code: 'DE', city_name: 'Berlin' }] });
    assert.deepEqual(list[0]!.checks.peer_network_range_check, { action: 'allow', ranges: ['10.0.0.0/8', '192.168.0.0/16'] });
    assert.deepEqual(list[0]!.checks.process_check, { processes: [{ linux_path: '/usr/bin/clamd' }, { windows_path: 'C:\\Program Files\\Defender\\MsMpEng.exe' }] });
    await row.getByText('2 processes running').waitFor();
    const os = list[0]!.checks.os_version_check as Record<string, unknown>;
    assert.deepEqual(os.linux, { min_kernel_version: '5.10' });
    assert.equal(os.ios, undefined, 'iOS is not allowed');

    await go(page, 'Access control', 'Access control');
    const card = page.locator('li[data-policy="Default"]');
    await card.getByRole('button', { name: 'Edit posture checks of Default' }).click();
    await card.getByRole('group', { name: 'Posture checks of Default' }).getByLabel('Recent clients').check();
    await card.getByRole('button', { name: 'Save posture checks' }).click();
    await card.locator('.chip', { hasText: 'Recent clients' }).waitFor();
    const pols = await call<Array<{ name: string; source_posture_checks: string[] }>>('GET', '/api/policies');
    assert.deepEqual(pols.find((p) => p.name === 'Default')!.source_posture_checks, [checkId]);
    await audit(page, 'policies with posture checks');

    // A check in use cannot be deleted: the server's reason is shown.
    await go(page, 'Posture checks', 'Posture checks');
    await page.locator('tr[data-check="Recent clients"]').getByText('Default').waitFor();
    await page.locator('tr[data-check="Recent clients"]').getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Delete Recent clients?' }).click();
    await page.getByRole('alert').filter({ hasText: /used by policy Default/ }).waitFor();

    await go(page, 'Access control', 'Access control');
    await card.getByRole('button', { name: 'Edit posture checks of Default' }).click();
    await card.getByRole('group', { name: 'Posture checks of Default' }).getByLabel('Recent clients').uncheck();
    await card.getByRole('button', { name: 'Save posture checks' }).click();
    await card.getByRole('button', { name: 'Edit posture checks of Default' }).waitFor();
    await go(page, 'Posture checks', 'Posture checks');
    await page.locator('tr[data-check="Recent clients"]').getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Delete Recent clients?' }).click();
    await page.getByText('No posture checks').waitFor();
    assert.deepEqual(await call('GET', '/api/posture-checks'), []);
  });

  await step('DNS zones: create, add and edit a record, edit, delete', async () => {
    await go(page, 'DNS', 'DNS');
    await page.getByLabel('Zone name').fill('Internal');
    await page.getByLabel('Zone domain').fill('internal.example.com');
    await page.getByRole('button', { name: 'Add zone' }).click();
    // distribution_groups is required: the server's message lands on the group picker.
    const dist = page.getByRole('group', { name: /peers that resolve this zone/ }).first();
    await dist.locator('.field-error').waitFor();
    await dist.getByLabel('All').check();
    await page.getByRole('button', { name: 'Add zone' }).click();
    const zone = page.locator('li[data-zone="internal.example.com"]');
    await zone.waitFor();
    await zone.getByLabel('Record name').fill('db');
    await zone.getByLabel('Content').fill('10.0.0.5');
    await zone.getByRole('button', { name: 'Add record' }).click();
    const rec = zone.locator('tr[data-record="db.internal.example.com"]');
    await rec.waitFor();
    await audit(page, 'DNS zones');
    await shot(page, '32-dns-zones');
    await rec.getByRole('button', { name: 'Edit record db.internal.example.com A' }).click();
    await zone.getByLabel('Content', { exact: true }).last().fill('10.0.0.6');
    await zone.getByRole('button', { name: 'Save record' }).click();
    await rec.getByText('10.0.0.6').waitFor();
    await zone.getByRole('button', { name: 'Edit zone internal.example.com' }).click();
    await page.getByLabel('Zone name').last().fill('Internal services');
    await page.getByLabel(/Add as a search domain/).last().check();
    await page.getByRole('button', { name: 'Save zone' }).click();
    await zone.getByText('Internal services').waitFor();
    const zones = await call<Array<{ id: string; name: string; enable_search_domain: boolean; records: Array<{ name: string; type: string; content: string; ttl: number }> }>>('GET', '/api/dns/zones');
    assert.equal(zones.length, 1);
    assert.equal(zones[0]!.name, 'Internal services');
    assert.equal(zones[0]!.enable_search_domain, true);
    assert.deepEqual(zones[0]!.records.map(({ name, type, content, ttl }) => ({ name, type, content, ttl })), [{ name: 'db.internal.example.com', type: 'A', content: '10.0.0.6', ttl: 300 }]);

    await rec.getByRole('button', { name: 'Delete' }).click();
    await rec.getByRole('button', { name: 'Delete db.internal.example.com?' }).click();
    await zone.getByText('No records yet.').waitFor();
    await zone.getByRole('button', { name: 'Delete' }).first().click();
    await zone.getByRole('button', { name: 'Delete zone internal.example.com?' }).click();
    await page.getByText('No DNS zones').waitFor();
    assert.deepEqual(await call('GET', '/api/dns/zones'), []);
  });

  await step('networks: create, add a resource and a routing peer, edit them, delete', async () => {
    await go(page, 'Networks', 'Networks');
    await page.getByLabel('Network name').fill('Office');
    await page.getByRole('button', { name: 'Add network' }).click();
    await page.getByRole('heading', { level: 1, name: 'Office' }).waitFor();
    const netId = page.url().split('/').at(-1)!;
    await page.getByLabel('Resource name').fill('File server');
    await page.getByLabel('Address', { exact: true }).fill('10.10.0.5');
    await page.getByRole('group', { name: /Resource groups/ }).getByLabel('ops').check();
    await page.getByRole('button', { name: 'Add resource' }).click();
    const res = page.locator('tr[data-resource="File server"]');
    await res.waitFor();
    assert.match((await res.textContent()) ?? '', /10\.10\.0\.5.*host.*ops/);
    const peerOption = (await page.getByLabel('Routing peer', { exact: true }).locator('option', { hasText: 'router-1' }).textContent())!;
    await page.getByLabel('Routing peer', { exact: true }).selectOption({ label: peerOption });
    await page.getByRole('button', { name: 'Add routing peer' }).click();
    const router = page.locator('tr[data-router="router-1"]');
    await router.waitFor();
    await audit(page, 'network detail');
    await shot(page, '33-network-detail');

    await res.getByRole('button', { name: 'Edit resource File server' }).click();
    await page.getByLabel('Address', { exact: true }).fill('10.10.0.0/24');
    await page.getByRole('button', { name: 'Save resource' }).click();
    await res.getByText('subnet').waitFor();
    await router.getByRole('button', { name: 'Edit router router-1' }).click();
    await page.getByLabel('Metric').fill('100');
    await page.getByLabel(/Masquerade/).uncheck();
    await page.getByRole('button', { name: 'Save routing peer' }).click();
    await router.getByRole('cell', { name: '100', exact: true }).waitFor();
    await page.getByLabel('Description', { exact: true }).fill('HQ LAN');
    await page.getByRole('button', { name: 'Save network' }).click();
    await page.getByText('All networks · HQ LAN').waitFor();

    const resources = await call<Array<{ name: string; address: string; type: string; groups: Array<{ name: string }> }>>('GET', `/api/networks/${netId}/resources`);
    assert.deepEqual(resources.map((r) => [r.name, r.address, r.type, r.groups.map((g) => g.name)]), [['File server', '10.10.0.0/24', 'subnet', ['ops']]]);
    const routers = await call<Array<{ peer?: string; metric: number; masquerade: boolean }>>('GET', `/api/networks/${netId}/routers`);
    assert.deepEqual(routers.map((r) => [r.metric, r.masquerade]), [[100, false]]);
    assert.equal((await call<{ description: string }>('GET', `/api/networks/${netId}`)).description, 'HQ LAN');

    await router.getByRole('button', { name: 'Delete' }).click();
    await router.getByRole('button', { name: 'Delete router router-1?' }).click();
    await page.getByText('No routing peers').waitFor();
    await res.getByRole('button', { name: 'Delete' }).click();
    await res.getByRole('button', { name: 'Delete File server?' }).click();
    await page.getByText('No resources in this network').waitFor();
    await page.getByRole('link', { name: 'All networks' }).click();
    const row = page.locator('tr[data-network="Office"]');
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.getByRole('button', { name: 'Delete Office?' }).click();
    await page.getByText('No networks').waitFor();
    assert.deepEqual(await call('GET', '/api/networks'), []);
  });

  await step('settings: a bad duration is refused on its field; changes are saved', async () => {
    await go(page, 'Settings', 'Settings');
    const exp = page.getByLabel('Login expires after', { exact: true });
    await exp.fill('0');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('.field-error').first().waitFor();
    assert.equal(await exp.getAttribute('aria-invalid'), 'true');
    assert.match((await page.locator('.field-error').first().textContent()) ?? '', /between 60 seconds and 180 days/);
    await exp.fill('7');
    await page.getByLabel('Login expires after: unit').selectOption('days');
    await page.getByRole('switch', { name: 'User groups propagation' }).click();
    await page.getByRole('switch', { name: 'JWT group sync' }).click();
    await page.getByLabel('JWT groups claim').fill('groups');
    await page.getByLabel('DNS domain').fill('corp.internal');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    await shot(page, '34-settings');
    const [acc] = await call<Array<{ settings: Record<string, unknown> }>>('GET', '/api/accounts');
    assert.equal(acc!.settings.peer_login_expiration, 7 * 86400);
    assert.equal(acc!.settings.groups_propagation_enabled, false, 'on by default, switched off');
    assert.equal(acc!.settings.peer_inactivity_expiration, 600, 'an untouched duration keeps its value');
    assert.equal(acc!.settings.jwt_groups_enabled, true);
    assert.equal(acc!.settings.jwt_groups_claim_name, 'groups');
    assert.equal(acc!.settings.dns_domain, 'corp.internal');
    // After a reload the page shows what the server stored.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor();
    assert.equal(await page.getByLabel('Login expires after', { exact: true }).inputValue(), '7');
    assert.equal(await page.getByLabel('DNS domain').inputValue(), 'corp.internal');
    await audit(page, 'settings');
  });

  await step('traffic events: P2P when the reporter is an end of the connection, Routed when it forwarded', async () => {
    // The server's own flow database, written as its flow receiver would (SQLite allows a second writer).
    const flow = await KyselyFlowStore.open({ db: join(tmp, 'data', 'flow.db') });
    try {
      const list = await call<Array<{ id: string; ip: string; name: string }>>('GET', '/api/peers');
      const web = list.find((p) => p.name === 'detail-peer' || p.name === 'web-peer-1')!;
      const router = list.find((p) => p.name === 'router-1')!;
      const accountId = (await call<Array<{ id: string }>>('GET', '/api/accounts'))[0]!.id;
      const now = Date.now();
      const base = {
        reporterKey: 'k', userId: null, type: 'start' as const, ruleId: null, direction: 'egress' as const, protocol: 6, sourcePort: 40000, destPort: 443,
        icmpType: null, icmpCode: null, rxPackets: 1, txPackets: 1, rxBytes: 10, txBytes: 20, sourceResourceId: null, destResourceId: null,
        numOfStarts: 1, numOfEnds: 0, numOfDrops: 0, windowStart: now - 1000, windowEnd: now, receivedAt: now, timestamp: now, accountId,
      };
      await flow.add({ ...base, eventId: 'p2p'.padEnd(32, 'a'), flowId: 'flow-p2p', reporterId: web.id, sourceIp: web.ip, destIp: router.ip });
      await flow.add({ ...base, eventId: 'routed'.padEnd(32, 'b'), flowId: 'flow-routed', reporterId: router.id, sourceIp: web.ip, destIp: '192.168.50.7' });
      await flow.flush();
    } finally {
      await flow.close();
    }
    await go(page, 'Traffic events', 'Traffic events');
    await page.locator('tr[data-flow="flow-p2p"] td[data-label="Connection"]', { hasText: 'P2P' }).waitFor();
    await page.locator('tr[data-flow="flow-routed"] td[data-label="Connection"]', { hasText: 'Routed' }).waitFor();
    await shot(page, '36-traffic-connection');
  });

  await step('a peer or network that does not exist: the server\'s answer is shown', async () => {
    await page.goto(url + '/peers/no-such-peer');
    await page.getByRole('alert').filter({ hasText: /Could not load: .*not found/ }).waitFor();
    await page.getByRole('link', { name: 'All peers' }).waitFor();
    await page.goto(url + '/networks/no-such-network');
    await page.getByRole('alert').filter({ hasText: /Could not load: .*not found/ }).waitFor();
    await audit(page, 'missing network');
  });

  await step('small screens: the new pages do not scroll sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [label, heading] of [['Posture checks', 'Posture checks'], ['Networks', 'Networks'], ['DNS', 'DNS'], ['Settings', 'Settings'], ['Peers', 'Peers']] as const) {
      await go(page, label, heading);
      const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
      assert.ok(overflow <= 1, `${label} scrolls sideways by ${overflow}px`);
    }
    await page.locator('tr[data-peer="detail-peer"]').getByRole('link', { name: 'detail-peer' }).click();
    await page.getByRole('heading', { level: 1, name: 'detail-peer' }).waitFor();
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
    assert.ok(overflow <= 1, `peer detail scrolls sideways by ${overflow}px`);
    await shot(page, '35-peer-detail-mobile');
  });

  assert.deepEqual(consoleErrors, [], 'no script errors in the browser console');
});
