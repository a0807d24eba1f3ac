import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, SHOTS, buildDashboard, launchChromium, shot, startServer, stopServer } from './helpers.js';

/**
 * Token renewal in the dashboard: the embedded IdP issues 8-second access tokens (NB_IDP_TOKEN_TTL)
 * with refresh tokens; the dashboard trades the refresh token before expiry, so it keeps working
 * long after the first token died, across a reload too, without the user signing in again.
 */

const EMAIL = 'owner@example.com';
const PASSWORD = 'correct horse battery';
const TTL_S = 8;

function bearerExp(auth: string): number {
  const payload = JSON.parse(Buffer.from(auth.replace(/^Bearer /, '').split('.')[1]!, 'base64url').toString()) as { exp: number };
  return payload.exp * 1000;
}

test('dashboard renews its access token with the refresh token (short-lived tokens)', { skip: existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (apt-get install -y chromium)`, timeout: 120_000 }, async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'nbwb-renew-'));
  let proc: ChildProcess | undefined;
  let context: BrowserContext | undefined;
  t.after(async () => {
    await context?.close().catch(() => {});
    if (proc) await stopServer(proc);
    rmSync(tmp, { recursive: true, force: true });
  });

  const webDir = await buildDashboard(join(tmp, 'web'));
  const server = await startServer(join(tmp, 'data'), webDir, [], { NB_IDP_TOKEN_TTL: String(TTL_S) });
  proc = server.proc;
  const setup = await fetch(`${server.url}/api/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: PASSWORD, name: 'Owner' }) });
  assert.equal(setup.status, 200);

  context = await launchChromium(join(tmp, 'profile'));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  const grants: string[] = [];
  const bearers: string[] = [];
  const unauthorized: string[] = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/oauth2/token') grants.push(new URLSearchParams(r.postData() ?? '').get('grant_type') ?? '');
    const auth = r.headers().authorization;
    if (u.pathname.startsWith('/api/') && auth?.startsWith('Bearer ')) bearers.push(auth);
  });
  page.on('response', (r) => {
    if (new URL(r.url()).pathname.startsWith('/api/') && r.status() === 401) unauthorized.push(r.url());
  });

  await page.goto(server.url + '/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Peers' }).waitFor();
  assert.deepEqual(grants, ['password']);
  const first = bearers[0]!;
  const firstExp = bearerExp(first);
  assert.ok(firstExp - Date.now() <= TTL_S * 1000 + 1000, 'the server issues short tokens');

  // Renewal happens on its own, before the first token expires.
  const deadline = Date.now() + 20_000;
  while (!grants.includes('refresh_token') && Date.now() < deadline) await page.waitForTimeout(250);
  assert.ok(grants.includes('refresh_token'), `a refresh grant was made (grants: ${grants.join(', ')})`);

  // Well past the first token's end (and past a second renewal), the pages still load.
  await page.waitForTimeout(Math.max(0, firstExp - Date.now()) + TTL_S * 1000);
  const before = bearers.length;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Groups', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Groups' }).waitFor();
  await page.waitForLoadState('networkidle').catch(() => {});
  const later = bearers.slice(before);
  assert.ok(later.length > 0, 'the Groups page called the API');
  for (const b of later) {
    assert.notEqual(b, first, 'requests carry a renewed token');
    assert.ok(bearerExp(b) > Date.now(), 'and an unexpired one');
  }
  assert.ok(grants.filter((g) => g === 'refresh_token').length >= 2, `renewed repeatedly (grants: ${grants.join(', ')})`);

  // A reload keeps the sign-in (the refresh token is in the tab's session storage).
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Groups' }).waitFor();
  assert.equal(await page.getByRole('heading', { name: 'Sign in' }).count(), 0);
  await shot(page, '18-renewed-session');
  assert.deepEqual(unauthorized, [], 'no request was refused on the way');
  assert.equal(grants.filter((g) => g === 'password').length, 1, 'the user signed in once');
});
