import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, SHOTS, buildDashboard, launchChromium, shot, startServer, stopServer } from './helpers.js';

/**
 * Sign-in through an external OpenID Connect provider: netbird-server started with --oidc-issuer,
 * a minimal provider on loopback (discovery, JWKS, an authorize endpoint that approves at once,
 * a token endpoint that checks the PKCE verifier). On a fresh instance the first person to sign in
 * there becomes the owner and gets the first-peer command.
 */

const CLIENT_ID = 'netbird-dashboard';

interface FakeIdp {
  issuer: string;
  /** Authorization requests seen (query parameters). */
  authorizations: URLSearchParams[];
  close(): Promise<void>;
}

async function fakeIdp(): Promise<FakeIdp> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const codes = new Map<string, { challenge: string; redirect: string }>();
  const authorizations: URLSearchParams[] = [];
  let issuer = '';
  const srv = createServer((req, res) => {
    const u = new URL(req.url ?? '/', issuer);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === '/.well-known/openid-configuration') {
      return json(200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` });
    }
    if (u.pathname === '/jwks') return json(200, { keys: [jwk] });
    if (u.pathname === '/authorize') {
      authorizations.push(u.searchParams);
      const q = u.searchParams;
      if (q.get('response_type') !== 'code' || q.get('client_id') !== CLIENT_ID || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
        res.writeHead(400).end('bad authorization request');
        return;
      }
      const code = randomBytes(16).toString('hex');
      codes.set(code, { challenge: q.get('code_challenge')!, redirect: q.get('redirect_uri')! });
      res.writeHead(302, { location: `${q.get('redirect_uri')}?code=${code}&state=${encodeURIComponent(q.get('state') ?? '')}` }).end();
      return;
    }
    if (u.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const f = new URLSearchParams(body);
        const c = codes.get(f.get('code') ?? '');
        codes.delete(f.get('code') ?? '');
        const verifier = f.get('code_verifier') ?? '';
        if (!c || c.redirect !== f.get('redirect_uri') || createHash('sha256').update(verifier).digest('base64url') !== c.challenge) {
          return json(400, { error: 'invalid_grant', error_description: 'code, redirect_uri or PKCE verifier mismatch' });
        }
        void new SignJWT({ email: 'ida@example.org', name: 'Ida Provider' })
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(issuer)
          .setAudience(CLIENT_ID)
          .setSubject('ext-user-1')
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(privateKey)
          .then((idToken) => json(200, { id_token: idToken, access_token: 'opaque', token_type: 'Bearer', expires_in: 3600 }));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return { issuer, authorizations, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

test('external OIDC provider: authorization code + PKCE sign-in; the first user owns the instance', { skip: existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (apt-get install -y chromium)`, timeout: 90_000 }, async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'nbwb-oidc-'));
  let proc: ChildProcess | undefined;
  let context: BrowserContext | undefined;
  const idp = await fakeIdp();
  t.after(async () => {
    await context?.close().catch(() => {});
    if (proc) await stopServer(proc);
    await idp.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const webDir = await buildDashboard(join(tmp, 'web'));
  const server = await startServer(join(tmp, 'data'), webDir, ['--oidc-issuer', idp.issuer, '--oidc-audience', CLIENT_ID]);
  proc = server.proc;
  const cfg = (await (await fetch(server.url + '/dashboard-config.json')).json()) as { oidc: { issuer: string; clientId: string } };
  assert.deepEqual({ issuer: cfg.oidc.issuer, clientId: cfg.oidc.clientId }, { issuer: idp.issuer, clientId: CLIENT_ID });
  const csp = (await fetch(server.url + '/', { headers: { accept: 'text/html' } })).headers.get('content-security-policy') ?? '';
  assert.match(csp, new RegExp(`connect-src 'self' ${idp.issuer.replace(/[.]/g, '\\.')}`));

  context = await launchChromium(join(tmp, 'profile'));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  await page.goto(server.url + '/');
  const host = new URL(idp.issuer).host;
  await page.getByRole('button', { name: `Sign in with ${host}` }).click();
  await page.getByRole('heading', { name: 'Add your first peer' }).waitFor();
  await page.getByText(/^netbird up --management-url/).waitFor();
  assert.equal(idp.authorizations.length, 1);
  assert.equal(idp.authorizations[0]!.get('redirect_uri'), `${server.url}/auth/callback`);
  assert.ok(!page.url().includes('code='), 'the authorization code is removed from the address bar');
  await shot(page, '16-oidc-first-peer');
  await page.getByRole('button', { name: 'Open the dashboard' }).click();
  await page.getByRole('heading', { level: 1, name: 'Peers' }).waitFor().catch(async (e: unknown) => {
    await shot(page, 'FAILED-oidc');
    throw e;
  });
  const who = (await page.locator('.whoami .who').textContent()) ?? '';
  assert.match(who, /Ida Provider/);
  assert.match(who, /owner/);

  // Signing out and in again goes through the provider without onboarding.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: `Sign in with ${host}` }).click();
  await page.getByRole('heading', { level: 1, name: 'Peers' }).waitFor();
  assert.equal(idp.authorizations.length, 2);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(page, '17-oidc-sign-in');
});
